"""BERT models whose training forward runs the vocabulary head only at the masked positions.

`BertForMaskedLM` projects every position onto the vocabulary and then ignores all but the ~15%
that carry a label. For the small models `mlmkit pretrain` trains on a CPU that projection is most
of the work: running it at the labelled positions only (what Google's original BERT code does
with `masked_lm_positions`) makes a training step of the default model about 2x faster (see
benchmarks/RESULTS.md), with the same loss and gradients.
Without labels (inference, the fixed-mask perplexity callback) the models are the stock ones, and
they are saved as the stock classes, so the checkpoints load with `AutoModelForMaskedLM`.

The losses are means over the batch's labels, so `accepts_loss_kwargs = False` tells `Trainer` to
divide them by the gradient accumulation steps itself (instead of passing `num_items_in_batch`,
which these forwards would ignore).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from transformers import BertForMaskedLM, BertForPreTraining
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.bert.modeling_bert import BertForPreTrainingOutput


class SparseHeadBertForMaskedLM(BertForMaskedLM):
    exported_architecture = "BertForMaskedLM"
    accepts_loss_kwargs = False

    def forward(  # type: ignore[override]
        self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs: Any
    ):
        if labels is None:
            return super().forward(
                input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
            )
        states = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
            **kwargs,
        )[0]
        picked = labels != -100
        scores = self.cls(states[picked])
        return MaskedLMOutput(loss=F.cross_entropy(scores, labels[picked]), logits=scores)


class SparseHeadBertForPreTraining(BertForPreTraining):
    exported_architecture = "BertForPreTraining"
    accepts_loss_kwargs = False

    def forward(  # type: ignore[override]
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        labels=None,
        next_sentence_label=None,
        **kwargs: Any,
    ):
        if labels is None or next_sentence_label is None:
            return super().forward(
                input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                labels=labels,
                next_sentence_label=next_sentence_label,
                **kwargs,
            )
        states, pooled = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
            **kwargs,
        )[:2]
        picked = labels != -100
        scores = self.cls.predictions(states[picked])
        order = self.cls.seq_relationship(pooled)
        loss = F.cross_entropy(scores, labels[picked]) + F.cross_entropy(
            order.view(-1, 2), next_sentence_label.view(-1)
        )
        return BertForPreTrainingOutput(
            loss=loss, prediction_logits=scores, seq_relationship_logits=order
        )

"""Masked-LM loss, perplexity and accuracy over masked tokens, as an `evaluate` module.

Load it offline from the installed package:

    import evaluate, mlmkit.metrics
    metric = evaluate.load(str(mlmkit.metrics.EVALUATE_MODULE))
    for batch in loader:                      # batches masked with fixed (keyed) masks
        logits = model(**inputs).logits
        metric.add_batch(**mlmkit.metrics.token_statistics(logits, batch["labels"]))
    metric.compute()   # {"mlm_loss", "mlm_perplexity", "mlm_accuracy", "mlm_tokens"}

Self-contained (numpy only) so that `evaluate` can copy and import it on its own.
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Masked-language-model figures over the masked tokens of an evaluation set:
mlm_loss = total negative log-likelihood of the masked tokens / number of masked tokens,
mlm_perplexity = exp(mlm_loss), mlm_accuracy = share of masked tokens whose top-1 prediction is
the original token. Positions whose reference is -100 are ignored.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: top-1 predicted token id per token (int).
    references: original token id per token, or -100 for positions that were not masked (int).
    nll: negative log-likelihood the model gives the reference token (float).
    `mlmkit.metrics.token_statistics(logits, labels)` returns all three for a batch.
Returns:
    mlm_loss, mlm_perplexity, mlm_accuracy, mlm_tokens (number of masked tokens).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MlmPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "nll": datasets.Value("float64"),
                }
            ),
            format="numpy",
        )

    def _compute(self, predictions, references, nll):
        keep = np.asarray(references) != -100
        count = int(keep.sum())
        if count == 0:
            raise ValueError("no masked tokens: every reference is -100")
        loss = float(np.asarray(nll, dtype=np.float64)[keep].sum()) / count
        hits = int((np.asarray(predictions)[keep] == np.asarray(references)[keep]).sum())
        return {
            "mlm_loss": loss,
            "mlm_perplexity": math.exp(loss) if loss < 700 else math.inf,
            "mlm_accuracy": hits / count,
            "mlm_tokens": count,
        }

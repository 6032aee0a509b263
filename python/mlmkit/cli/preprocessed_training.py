"""`mlmkit pretrain --corpus DIR` (and `adapt`) on a directory written by `mlmkit preprocess`:
its objective, block size, tokenizer and splits replace the corpus reading, tokenizer training
and preprocessing steps."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .arguments import CorpusArguments, MaskingArguments, ModelArguments
from .errors import CliError
from .preprocessed import LABEL_COLUMN, PRETRAIN_OBJECTIVE, PreprocessedCorpus

# Flags that have no effect with a preprocessed corpus (its tokenizer and text are fixed).
NOT_APPLICABLE = (
    "tokenizer_type",
    "vocab_size",
    "lowercase",
    "strip_accents",
    "min_frequency",
    "text_field",
    "canaries",
    "canary_repeats",
)
_DECODED_EXAMPLES = 400


def adopt_settings(
    corpus: PreprocessedCorpus,
    corpus_args: CorpusArguments,
    masking: MaskingArguments,
    model: ModelArguments | None,
    given: frozenset[str],
) -> None:
    """Take the objective and block size from the manifest; refuse flags that contradict it.
    `model` None: `adapt`, which trains a masked LM on MLM blocks only."""
    where = f"the preprocessed corpus {corpus.directory}"
    for name in NOT_APPLICABLE:
        if name in given:
            raise CliError(
                f"--{name} has no effect on {where}: it was tokenized when it was preprocessed "
                "(its tokenizer is used)"
            )
    objective = PRETRAIN_OBJECTIVE[corpus.objective]
    if model is None and corpus.objective != "mlm":
        raise CliError(
            f"{where} holds {corpus.objective} pairs; adapt trains on MLM blocks (preprocess "
            "with --objective mlm)"
        )
    if model is not None and "objective" in given and model.objective != objective:
        raise CliError(
            f"{where} holds {corpus.objective} examples: use --objective {objective} (or "
            "preprocess it again with another --objective)"
        )
    if "block_size" in given and masking.block_size != corpus.block_size:
        raise CliError(
            f"{where} has examples of {corpus.block_size} tokens: use --block_size "
            f"{corpus.block_size} (or preprocess it again with another --block_size)"
        )
    if model is not None and corpus.block_size > model.max_position_embeddings:
        raise CliError(
            f"{where} has examples of {corpus.block_size} tokens, more than "
            f"--max_position_embeddings {model.max_position_embeddings}: raise it"
        )
    if "eval_fraction" in given and "validation" in corpus.split_names():
        raise CliError(f"--eval_fraction has no effect: {where} has a validation split")
    if model is not None:
        model.objective = objective  # type: ignore[assignment]
    masking.block_size = corpus.block_size


def preprocessed_sets(
    corpus: PreprocessedCorpus,
    corpus_args: CorpusArguments,
    run: Any,
    model_tokenizer: Any = None,
) -> tuple[Any, Any, Any, Any]:
    """(tokenizer, train set, eval set, held-out documents decoded from eval examples). With
    `model_tokenizer` (adapt) the corpus must have been tokenized by that tokenizer."""
    import datasets

    from .preprocessed import tokenizer_fingerprint

    start = time.perf_counter()
    tokenizer = corpus.load_tokenizer()
    if model_tokenizer is not None:
        if tokenizer_fingerprint(model_tokenizer) != corpus.manifest["tokenizer"]["fingerprint"]:
            raise CliError(
                f"the preprocessed corpus {corpus.directory} was tokenized with another "
                "tokenizer than the model's: preprocess it with --tokenizer MODEL_DIR"
            )
        tokenizer = model_tokenizer
    names = corpus.split_names()
    if "train" not in names:
        raise CliError(f"the preprocessed corpus {corpus.directory} has no training examples")
    train_set = corpus.load_split("train")
    if "validation" in names:
        eval_set = corpus.load_split("validation")
    else:
        train_set, eval_set = _hold_out_rows(train_set, corpus_args.eval_fraction)
    label = LABEL_COLUMN.get(corpus.objective)
    if label is not None and label != "next_sentence_label":
        # BertForPreTraining takes the label of either task as next_sentence_label.
        train_set = train_set.rename_column(label, "next_sentence_label")
        eval_set = eval_set.rename_column(label, "next_sentence_label")
    eval_set = eval_set.select(range(min(corpus_args.max_eval_samples, len(eval_set))))
    if len(train_set) == 0 or len(eval_set) == 0:
        raise CliError("the corpus is too small: no training or evaluation examples")
    m = corpus.manifest
    splits = m["splits"]
    run.info["corpus"] = {
        "source": f"preprocessed corpus {corpus.directory} ({m['corpus']['description']})",
        "preprocessed": str(corpus.directory),
        "train_documents": splits["train"]["documents"],
        "eval_documents": splits["validation"]["documents"] if "validation" in names else 0,
        "train_characters": splits["train"]["characters"],
    }
    run.info["tokenizer"] = {
        "type": f"{m['tokenizer']['class']} from {corpus.directory}",
        "vocab_size": len(tokenizer),
        "fingerprint": m["tokenizer"]["fingerprint"],
    }
    run.timed("corpus", start)
    docs = datasets.Dataset.from_dict({"sentences": _decoded_sentences(eval_set, tokenizer)})
    return tokenizer, train_set, eval_set, docs


def _hold_out_rows(ds: Any, fraction: float) -> tuple[Any, Any]:
    """Rows whose index hashes below `fraction` (at least one) become the eval set."""
    n = len(ds)
    if n < 2:
        raise CliError(f"the preprocessed corpus has {n} example(s); it needs at least 2")
    x = np.arange(n, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)  # splitmix64
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    held = (x >> np.uint64(11)).astype(np.float64) / 2.0**53 < fraction
    if not held.any():
        held[0] = True
    if held.all():
        held[-1] = False
    return ds.select(np.flatnonzero(~held)), ds.select(np.flatnonzero(held))


def _decoded_sentences(eval_set: Any, tokenizer: Any) -> list[list[str]]:
    """Held-out text for the fill-mask examples, decoded from eval examples (the first letter
    of each sentence capitalised, which a lowercasing tokenizer's decoding has lost)."""
    from .sentences import split_sentences

    rows = eval_set.select(range(min(_DECODED_EXAMPLES, len(eval_set))))["input_ids"]
    docs = []
    for ids in rows:
        text = tokenizer.decode(ids, skip_special_tokens=True)
        sentences = [s[:1].upper() + s[1:] for s in split_sentences(text)]
        if sentences:
            docs.append(sentences)
    return docs

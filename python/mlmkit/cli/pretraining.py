"""`mlmkit pretrain` and `mlmkit adapt`: corpus -> (tokenizer) -> mlmkit preprocessing -> mlmkit
masking -> `Trainer` with the fixed-mask perplexity callback -> model, tokenizer, metrics.json,
a PNG of the curves and fill-mask predictions on held-out sentences."""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import seq_schedule
from .arguments import (
    AdaptArguments,
    CorpusArguments,
    MaskingArguments,
    ModelArguments,
    TokenizerArguments,
)
from .errors import CliError

METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"
N_EXAMPLES = 5


@dataclass
class Run:
    """What a run measured, for the summary and metrics.json."""

    command: str
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def timed(self, name: str, start: float) -> None:
        self.seconds[name] = round(time.perf_counter() - start, 2)


# ---- shared steps ---------------------------------------------------------------------------


def check_arguments(corpus: CorpusArguments, masking: MaskingArguments) -> None:
    for name in ("mlm_probability", "mask_replace_prob", "random_replace_prob"):
        value = getattr(masking, name)
        if not 0.0 <= value <= 1.0:
            raise CliError(f"--{name} must be between 0 and 1, got {value}")
    if not 0.0 < masking.eval_mlm_probability <= 1.0:
        raise CliError(
            f"--eval_mlm_probability must be in (0, 1], got {masking.eval_mlm_probability}"
        )
    if masking.mask_replace_prob + masking.random_replace_prob > 1.0:
        raise CliError("--mask_replace_prob plus --random_replace_prob must not exceed 1")
    if masking.block_size < 8:
        raise CliError(f"--block_size must be at least 8, got {masking.block_size}")
    if corpus.canaries < 0 or corpus.canary_repeats < 1:
        raise CliError("--canaries must be >= 0 and --canary_repeats >= 1")
    if corpus.max_eval_samples < 1:
        raise CliError(f"--max_eval_samples must be at least 1, got {corpus.max_eval_samples}")


def read_corpus(args: CorpusArguments, seed: int, output_dir: Path, run: Run) -> Any:
    from .canaries import insert_canaries, make_canaries, save_canaries
    from .text_corpus import load_corpus

    start = time.perf_counter()
    corpus = load_corpus(args.corpus, args.text_field, args.eval_fraction)
    if args.canaries:
        inserted, controls = make_canaries(args.canaries, args.canary_repeats, seed)
        corpus.train = insert_canaries(corpus.train, inserted, seed)
        path = save_canaries(output_dir, inserted, controls)
        run.info["canaries"] = {
            "inserted": len(inserted),
            "controls": len(controls),
            "file": str(path),
        }
    run.info["corpus"] = {
        "source": corpus.description,
        "train_documents": len(corpus.train),
        "eval_documents": len(corpus.eval),
        "train_characters": _characters(corpus.train),
    }
    run.timed("corpus", start)
    return corpus


def _characters(docs: Any) -> int:
    return sum(
        len(s) for batch in docs.iter(batch_size=10_000) for d in batch["sentences"] for s in d
    )


def _texts(docs: Any) -> Any:
    for batch in docs.iter(batch_size=1000):
        yield [" ".join(d) for d in batch["sentences"]]


@dataclass
class TokenizeDocuments:
    """Map function: the documents' sentences, joined, as token ids without special tokens."""

    tokenizer: Any

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, Any]:
        from mlmkit.vocab import token_ids

        texts = [" ".join(d) for d in batch["sentences"]]
        return {"input_ids": token_ids(self.tokenizer, texts)}


def mlm_blocks(docs: Any, tokenizer: Any, block_size: int) -> Any:
    """Blocks of exactly `block_size` tokens, `[CLS] ... [SEP]`, documents separated by [SEP]
    (the last block of a map batch is kept, shorter)."""
    import mlmkit

    ids = docs.map(
        TokenizeDocuments(tokenizer),
        batched=True,
        remove_columns=docs.column_names,
        desc="Tokenizing",
    )
    group = mlmkit.GroupTexts(
        block_size, tokenizer, separator=True, add_special_tokens=True, tail="keep"
    )
    blocks = ids.with_format("arrow").map(
        group, batched=True, batch_size=10_000, remove_columns=ids.column_names, desc="Grouping"
    )
    return blocks.with_format(None)


def pair_examples(docs: Any, tokenizer: Any, block_size: int, task: str, seed: int) -> Any:
    """NSP / SOP sentence pairs of at most `block_size` tokens; the label column is named
    `next_sentence_label`, which `BertForPreTraining` takes for either task."""
    import mlmkit

    pairs = mlmkit.SentencePairs(
        tokenizer=tokenizer, max_seq_length=block_size, task=task, seed=seed
    )
    out = docs.map(
        pairs, batched=True, remove_columns=docs.column_names, desc=f"{task.upper()} pairs"
    )
    if pairs.label_column != "next_sentence_label":
        out = out.rename_column(pairs.label_column, "next_sentence_label")
    return out


def make_collator(
    tokenizer: Any, masking: MaskingArguments, seed: int, *, for_eval: bool = False
) -> Any:
    """The training collator, or with `for_eval` the fixed-mask evaluation's (same masking, at
    --eval_mlm_probability)."""
    import mlmkit

    try:
        return mlmkit.DataCollatorForLanguageModeling(
            tokenizer,
            mlm_probability=masking.eval_mlm_probability if for_eval else masking.mlm_probability,
            mask_replace_prob=masking.mask_replace_prob,
            random_replace_prob=masking.random_replace_prob,
            seed=seed,
            masking=masking.masking,
        )
    except (ValueError, TypeError, NotImplementedError) as e:
        raise CliError(f"masking: {e}") from None


def train(
    run: Run,
    model: Any,
    tokenizer: Any,
    train_set: Any,
    eval_set: Any,
    masking: MaskingArguments,
    training_args: Any,
) -> Any:
    """Train with `Trainer` and mlmkit's collator; fixed-mask perplexity (at
    --eval_mlm_probability) before training, at every evaluation and at the end. Returns the
    trainer."""
    from transformers import Trainer

    import mlmkit

    collator = make_collator(tokenizer, masking, training_args.seed)
    eval_collator = make_collator(tokenizer, masking, training_args.seed, for_eval=True)

    callback = mlmkit.FixedMaskPerplexityCallback(
        eval_set,
        eval_collator,
        batch_size=training_args.per_device_eval_batch_size,
        seed=training_args.seed,
        evaluate_before_training=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        processing_class=tokenizer,
    )
    # Most masked-LM heads declare **kwargs but ignore `num_items_in_batch` and return a mean
    # (transformers#47688): Trainer would then not divide their loss by the accumulation steps.
    # Without the count every head returns its batch mean, and Trainer divides it.
    trainer.model_accepts_loss_kwargs = False
    callback.attach(trainer)
    seq_schedule.attach(trainer, collator, masking)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Trainer pins memory by default; on a CPU-only machine torch warns about it every epoch.
        warnings.filterwarnings(
            "ignore", message=".*pin_memory.*no accelerator", category=UserWarning
        )
        trainer.train()
        last_eval = max(
            (h["step"] for h in trainer.state.log_history if "eval_mlm_loss" in h), default=-1
        )
        if last_eval != trainer.state.global_step:
            trainer.evaluate()
    run.timed("training", start)
    return trainer


def finish(
    run: Run, trainer: Any, tokenizer: Any, eval_docs: Any, output_dir: Path
) -> dict[str, Any]:
    """Save the model, tokenizer, metrics.json and the PNG; print the summary and fill-mask
    predictions on held-out sentences. Returns the metrics."""
    from .fill_mask import fill_mask, held_out_examples
    from .plots import plot_curves

    start = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    model = trainer.model.eval()
    examples = []
    for text, answer in held_out_examples(_iter_docs(eval_docs), tokenizer, N_EXAMPLES):
        preds = fill_mask(model, tokenizer, text, top_k=5)[0]
        examples.append({"text": text, "answer": answer, "predictions": [asdict(p) for p in preds]})
    history = trainer.state.log_history
    evals = [h for h in history if "eval_mlm_perplexity" in h]
    metrics: dict[str, Any] = {
        "command": run.command,
        **run.info,
        "eval_mlm_perplexity_before": evals[0]["eval_mlm_perplexity"] if evals else None,
        "eval_mlm_perplexity_after": evals[-1]["eval_mlm_perplexity"] if evals else None,
        "eval_mlm_accuracy_before": evals[0]["eval_mlm_accuracy"] if evals else None,
        "eval_mlm_accuracy_after": evals[-1]["eval_mlm_accuracy"] if evals else None,
        "global_step": trainer.state.global_step,
        "fill_mask_examples": examples,
        "log_history": history,
    }
    plot_curves(history, output_dir / CURVES_FILE, f"mlmkit {run.command}")
    run.timed("saving", start)
    metrics["seconds"] = run.seconds
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    print(summary(metrics, output_dir))
    return metrics


def _iter_docs(docs: Any) -> Any:
    for batch in docs.iter(batch_size=1000):
        yield from batch["sentences"]


def summary(metrics: dict[str, Any], output_dir: Path) -> str:
    s = metrics["seconds"]
    total = sum(s.values())
    lines = [
        "",
        f"mlmkit {metrics['command']}: done in {total:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in s.items())
        + ")",
    ]
    c = metrics["corpus"]
    lines.append(
        f"corpus: {c['source']}: {c['train_documents']} train / {c['eval_documents']} held-out "
        f"documents, {c['train_characters'] / 1e6:.2f} M training characters"
    )
    if "tokenizer" in metrics:
        t = metrics["tokenizer"]
        lines.append(f"tokenizer: {t['type']}, {t['vocab_size']} tokens")
    m = metrics["model"]
    schedule = f" cropped by --seq_schedule {m['seq_schedule']}" if m.get("seq_schedule") else ""
    lines.append(
        f"model: {m['class']}, {m['layers']} layers, hidden {m['hidden_size']}, "
        f"{m['parameters'] / 1e6:.1f} M parameters; {m['train_examples']} training examples of "
        f"<= {m['block_size']} tokens{schedule}, {m['masking']} masking of "
        f"{m['mlm_probability']:.0%} (evaluation: {m['eval_mlm_probability']:.0%})"
    )
    before, after = metrics["eval_mlm_perplexity_before"], metrics["eval_mlm_perplexity_after"]
    if before is not None:
        lines.append(
            f"eval perplexity (fixed masks, {m['eval_examples']} held-out examples): "
            f"{before:.1f} at step 0 -> {after:.1f} at step {metrics['global_step']}; masked-token "
            f"accuracy {metrics['eval_mlm_accuracy_before']:.1%} -> "
            f"{metrics['eval_mlm_accuracy_after']:.1%}"
        )
    lines.append(f"saved in {output_dir}/: model, tokenizer, {METRICS_FILE}, {CURVES_FILE}")
    if metrics.get("canaries"):
        canaries = metrics["canaries"]["file"]
        lines.append(f"canaries: {canaries} (check with: mlmkit probe --model {output_dir})")
    if metrics["fill_mask_examples"]:
        lines += ["", "fill-mask on held-out sentences (answer: top 5 predictions):"]
        for ex in metrics["fill_mask_examples"]:
            preds = ", ".join(f"{p['token']} ({p['score']:.2f})" for p in ex["predictions"])
            lines += [f"  {ex['text']}", f"    {ex['answer']}: {preds}"]
    return "\n".join(lines)


def _model_info(
    model: Any,
    config: Any,
    train_set: Any,
    eval_set: Any,
    masking: MaskingArguments,
    sparse_head: bool,
) -> dict[str, Any]:
    return {
        "class": type(model).__name__,
        "sparse_head": sparse_head,
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_examples": len(train_set),
        "eval_examples": len(eval_set),
        "block_size": masking.block_size,
        "seq_schedule": masking.seq_schedule,
        "masking": masking.masking,
        "mlm_probability": masking.mlm_probability,
        "eval_mlm_probability": masking.eval_mlm_probability,
    }


def _eval_subset(eval_set: Any, n: int) -> Any:
    return eval_set.select(range(min(n, len(eval_set))))


# ---- the commands ---------------------------------------------------------------------------


def run_pretrain(
    corpus_args: CorpusArguments,
    masking: MaskingArguments,
    tok_args: TokenizerArguments,
    model_args: ModelArguments,
    training_args: Any,
    given: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """`given`: the flags on the command line. A corpus written by `mlmkit preprocess` brings
    its objective, block size and tokenizer; flags that would change them are errors."""
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, set_seed

    import mlmkit

    from .positions import init_sinusoidal_positions
    from .preprocessed import open_preprocessed

    preprocessed = open_preprocessed(corpus_args.corpus)
    if preprocessed is not None:
        from .preprocessed_training import adopt_settings

        adopt_settings(preprocessed, corpus_args, masking, model_args, given)
    seq_schedule.resolve(masking, model_args.objective, given, preprocessed is not None)
    check_arguments(corpus_args, masking)
    if model_args.hidden_size % model_args.num_attention_heads:
        raise CliError(
            f"--hidden_size ({model_args.hidden_size}) must be a multiple of "
            f"--num_attention_heads ({model_args.num_attention_heads})"
        )
    if masking.block_size > model_args.max_position_embeddings:
        raise CliError(
            f"--block_size ({masking.block_size}) exceeds --max_position_embeddings "
            f"({model_args.max_position_embeddings})"
        )
    if not 0.0 <= model_args.dropout < 1.0:
        raise CliError(f"--dropout must be in [0, 1), got {model_args.dropout}")
    if tok_args.vocab_size < 100:
        raise CliError(f"--vocab_size must be at least 100, got {tok_args.vocab_size}")
    output_dir = Path(training_args.output_dir)
    run = Run("pretrain")
    if preprocessed is not None:
        from .preprocessed_training import preprocessed_sets

        tokenizer, train_set, eval_set, eval_docs = preprocessed_sets(
            preprocessed, corpus_args, run
        )
    else:
        tokenizer, train_set, eval_set, eval_docs = _raw_sets(
            corpus_args, masking, tok_args, model_args, training_args, output_dir, run
        )

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=model_args.hidden_size,
        num_hidden_layers=model_args.num_hidden_layers,
        num_attention_heads=model_args.num_attention_heads,
        intermediate_size=model_args.intermediate_size,
        max_position_embeddings=model_args.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=model_args.dropout,
        attention_probs_dropout_prob=model_args.dropout,
    )
    model_class = BertForMaskedLM if model_args.objective == "mlm" else BertForPreTraining
    set_seed(training_args.seed)
    model = mlmkit.sparse_mlm_head(model_class(config))
    if model_args.position_init == "sinusoidal":
        init_sinusoidal_positions(
            model.bert.embeddings.position_embeddings, config.initializer_range
        )
    run.info["objective"] = model_args.objective
    run.info["model"] = _model_info(model, config, train_set, eval_set, masking, True)
    run.info["model"]["position_init"] = model_args.position_init
    trainer = train(run, model, tokenizer, train_set, eval_set, masking, training_args)
    return finish(run, trainer, tokenizer, eval_docs, output_dir)


def _raw_sets(
    corpus_args: CorpusArguments,
    masking: MaskingArguments,
    tok_args: TokenizerArguments,
    model_args: ModelArguments,
    training_args: Any,
    output_dir: Path,
    run: Run,
) -> tuple[Any, Any, Any, Any]:
    """Read the corpus, train the tokenizer, make the examples: (tokenizer, train set, eval
    set, held-out documents)."""
    from .tokenizer_training import train_tokenizer

    corpus = read_corpus(corpus_args, training_args.seed, output_dir, run)

    start = time.perf_counter()
    tokenizer = train_tokenizer(
        _texts(corpus.train),
        kind=tok_args.tokenizer_type,
        vocab_size=tok_args.vocab_size,
        lowercase=tok_args.lowercase,
        strip_accents=tok_args.strip_accents,
        min_frequency=tok_args.min_frequency,
        model_max_length=model_args.max_position_embeddings,
        length=len(corpus.train),
    )
    run.info["tokenizer"] = {
        "type": tok_args.tokenizer_type,
        "vocab_size": len(tokenizer),
        "lowercase": tok_args.lowercase,
        "strip_accents": tok_args.strip_accents,
    }
    run.timed("tokenizer", start)

    start = time.perf_counter()
    if model_args.objective == "mlm":
        train_set = mlm_blocks(corpus.train, tokenizer, masking.block_size)
        eval_set = mlm_blocks(corpus.eval, tokenizer, masking.block_size)
    else:
        task = model_args.objective.split("+")[1]
        train_set = pair_examples(
            corpus.train, tokenizer, masking.block_size, task, training_args.seed
        )
        eval_set = pair_examples(
            corpus.eval, tokenizer, masking.block_size, task, training_args.seed
        )
    eval_set = _eval_subset(eval_set, corpus_args.max_eval_samples)
    if len(train_set) == 0 or len(eval_set) == 0:
        raise CliError("the corpus is too small: no training or evaluation examples")
    run.timed("preprocessing", start)
    return tokenizer, train_set, eval_set, corpus.eval


def run_adapt(
    adapt_args: AdaptArguments,
    corpus_args: CorpusArguments,
    masking: MaskingArguments,
    training_args: Any,
    given: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    from .models import load_masked_lm, with_sparse_head
    from .preprocessed import open_preprocessed

    preprocessed = open_preprocessed(corpus_args.corpus)
    if preprocessed is not None:
        from .preprocessed_training import adopt_settings

        adopt_settings(preprocessed, corpus_args, masking, None, given)
    seq_schedule.resolve(masking, "mlm", given, preprocessed is not None)
    check_arguments(corpus_args, masking)
    output_dir = Path(training_args.output_dir)
    run = Run("adapt")
    model, tokenizer = load_masked_lm(adapt_args.model, device="cpu")
    limit = min(
        getattr(model.config, "max_position_embeddings", masking.block_size),
        tokenizer.model_max_length if tokenizer.model_max_length < 1e9 else masking.block_size,
    )
    if masking.block_size > limit:
        raise CliError(f"--block_size ({masking.block_size}) exceeds the model's maximum ({limit})")
    run.info["base_model"] = str(adapt_args.model)
    if preprocessed is not None:
        from .preprocessed_training import preprocessed_sets

        _, train_set, eval_set, eval_docs = preprocessed_sets(
            preprocessed, corpus_args, run, model_tokenizer=tokenizer
        )
    else:
        corpus = read_corpus(corpus_args, training_args.seed, output_dir, run)
        start = time.perf_counter()
        train_set = mlm_blocks(corpus.train, tokenizer, masking.block_size)
        eval_set = _eval_subset(
            mlm_blocks(corpus.eval, tokenizer, masking.block_size), corpus_args.max_eval_samples
        )
        if len(train_set) == 0 or len(eval_set) == 0:
            raise CliError("the corpus is too small: no training or evaluation examples")
        run.timed("preprocessing", start)
        eval_docs = corpus.eval
    model.train()
    sparse = with_sparse_head(model)
    run.info["objective"] = "mlm"
    run.info["model"] = _model_info(model, model.config, train_set, eval_set, masking, sparse)
    trainer = train(run, model, tokenizer, train_set, eval_set, masking, training_args)
    metrics = finish(run, trainer, tokenizer, eval_docs, output_dir)
    if not math.isfinite(metrics["eval_mlm_perplexity_after"] or math.nan):
        raise CliError("training diverged (non-finite eval perplexity); lower --learning_rate")
    return metrics

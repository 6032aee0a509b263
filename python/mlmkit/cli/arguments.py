"""Flags of `mlmkit pretrain` / `mlmkit adapt`: mlmkit's own dataclasses plus transformers'
`TrainingArguments`, all parsed by `HfArgumentParser` (so training flags keep their transformers
names: `--output_dir`, `--max_steps`, `--per_device_train_batch_size`, `--learning_rate`,
`--seed`, ...; dashes work too)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Objective = Literal["mlm", "mlm+nsp", "mlm+sop"]
Masking = Literal["token", "word", "span"]


@dataclass
class CorpusArguments:
    corpus: list[str] | None = field(
        default=None,
        metadata={
            "help": "text files, folders or globs (documents separated by blank lines), JSON "
            "lines files (.jsonl/.json) or a saved `datasets` directory; default: the running "
            "Python's standard library documentation"
        },
    )
    text_field: str = field(default="text", metadata={"help": "text field of JSON lines/datasets"})
    eval_fraction: float = field(
        default=0.05, metadata={"help": "share of documents held out for evaluation (by hash)"}
    )
    max_eval_samples: int = field(
        default=256, metadata={"help": "at most this many eval blocks (fixed-mask perplexity)"}
    )
    canaries: int = field(
        default=0,
        metadata={
            "help": "insert this many random secret sentences into the training text (see "
            "`mlmkit probe`); saved with as many never-inserted controls in canaries.json"
        },
    )
    canary_repeats: int = field(default=20, metadata={"help": "copies of each inserted canary"})


@dataclass
class MaskingArguments:
    masking: Masking = field(
        default="token", metadata={"help": "what is masked: token, whole word or span"}
    )
    mlm_probability: float = field(
        default=0.15,
        metadata={"help": "share of tokens masked in training (pretrain's default is 0.4)"},
    )
    eval_mlm_probability: float = field(
        default=0.15,
        metadata={
            "help": "share of tokens masked for the fixed-mask eval perplexity (BERT's 0.15, so "
            "runs with different training rates compare)"
        },
    )
    mask_replace_prob: float = field(
        default=0.8, metadata={"help": "of the masked tokens: share replaced by [MASK]"}
    )
    random_replace_prob: float = field(
        default=0.1, metadata={"help": "of the masked tokens: share replaced by a random token"}
    )
    block_size: int = field(default=64, metadata={"help": "tokens per training example"})
    seq_schedule: str | None = field(
        default=None,
        metadata={
            "help": "short sequences first, as LENGTH:FRACTION stages, e.g. 128:0.9,512:0.1 "
            "(90%% of the steps on windows of 128 tokens, then 512); blocks are cut at the "
            "largest length, evaluation stays at it"
        },
    )


@dataclass
class TokenizerArguments:
    tokenizer_type: Literal["wordpiece", "bpe", "unigram"] = field(
        default="wordpiece", metadata={"help": "tokenizer model trained on the corpus"}
    )
    vocab_size: int = field(default=4096, metadata={"help": "tokenizer vocabulary size"})
    lowercase: bool = field(default=True, metadata={"help": "lowercase the text"})
    strip_accents: bool = field(
        default=True, metadata={"help": "strip accents (Hangul syllables are kept whole)"}
    )
    min_frequency: int = field(default=2, metadata={"help": "minimum count of a merged token"})


@dataclass
class ModelArguments:
    objective: Objective = field(
        default="mlm",
        metadata={
            "help": "mlm: BertForMaskedLM on grouped blocks; mlm+nsp / mlm+sop: BertForPreTraining "
            "on sentence pairs (next-sentence or sentence-order prediction)"
        },
    )
    num_hidden_layers: int = 2
    hidden_size: int = 128
    num_attention_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    dropout: float = field(
        default=0.0,
        metadata={
            "help": "hidden and attention dropout (BERT's is 0.1; 0 trains faster in a short run, "
            "as in Geiping & Goldstein's 'Cramming')"
        },
    )
    position_init: Literal["sinusoidal", "random"] = field(
        default="sinusoidal",
        metadata={
            "help": "initial position embeddings: sinusoids (Vaswani et al.) at BERT's "
            "initializer scale, or BERT's random normal ones; both stay trainable"
        },
    )


@dataclass
class AdaptArguments:
    model: str = field(metadata={"help": "directory of the masked LM to adapt (and its tokenizer)"})


# Training defaults for a run of a few minutes on a small CPU; any of them can be overridden.
TRAINING_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 3e-3,
    "adam_beta2": 0.98,
    "warmup_steps": 0.06,
    "weight_decay": 0.01,
    "logging_steps": 100,
    "eval_strategy": "steps",
    "eval_steps": 500,
    "save_strategy": "no",
    "report_to": "none",
    "seed": 42,
}
# From scratch, 40% masking gives a step 2.7x as many labels for little extra work and gets past
# the "predict frequent tokens" plateau sooner (Wettig et al. 2023, "Should You Mask 15% in
# Masked Language Modeling?"); evaluation stays at 15% (--eval_mlm_probability).
PRETRAIN_DEFAULTS: dict[str, Any] = {
    **TRAINING_DEFAULTS,
    "output_dir": "mlmkit-pretrain",
    "max_steps": 2500,
    "mlm_probability": 0.4,
}
ADAPT_DEFAULTS: dict[str, Any] = {
    **TRAINING_DEFAULTS,
    "output_dir": "mlmkit-adapt",
    "max_steps": 200,
    "learning_rate": 1e-4,
}

PRETRAIN_GROUPS = (CorpusArguments, MaskingArguments, TokenizerArguments, ModelArguments)
ADAPT_GROUPS = (AdaptArguments, CorpusArguments, MaskingArguments)


def add_training_command(
    sub: Any, name: str, groups: tuple[type, ...], defaults: dict[str, Any], **kwargs: Any
) -> argparse.ArgumentParser:
    from transformers import HfArgumentParser, TrainingArguments

    flags = HfArgumentParser([*groups, TrainingArguments], add_help=False)
    parser = sub.add_parser(
        name,
        parents=[flags],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        **kwargs,
    )
    parser.set_defaults(**defaults)
    return parser


def dataclasses_from(namespace: argparse.Namespace, groups: tuple[type, ...]) -> list[Any]:
    """The parsed flags as instances of `groups` (what `HfArgumentParser` would return)."""
    values = vars(namespace)
    return [
        cls(
            **{
                f.name: values[f.name]
                for f in dataclasses.fields(cls)
                if f.init and f.name in values
            }
        )
        for cls in groups
    ]


def given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations of the flags given in `argv` (abbreviations and `--no_x` forms
    included), found by parsing it again with every default suppressed. `parser` is changed:
    pass a fresh one."""

    def suppress(p: argparse.ArgumentParser) -> None:
        p._defaults.clear()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    suppress(sub)
            else:
                action.default = argparse.SUPPRESS

    suppress(parser)
    return set(vars(parser.parse_args(argv))) - {"command"}

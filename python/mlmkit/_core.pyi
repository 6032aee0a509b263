"""Private compiled kernels of mlmkit (hand-written stub)."""

from typing import Literal, final

import numpy as np

from mlmkit.batch import Columns, Ragged
from mlmkit.templates import PairTemplate
from mlmkit.vocab import TokenizerTables

__all__ = [
    "ENDS_WORD_BREAK",
    "ENDS_WORD_JOIN",
    "ENDS_WORD_NONE",
    "IGNORE_INDEX",
    "LANE_CROP",
    "LANE_NEXT",
    "LANE_OTHER_DOC",
    "LANE_OTHER_START",
    "LANE_RANDOM_TOKEN",
    "LANE_REPLACE",
    "LANE_SELECT",
    "LANE_SPAN_LENGTH",
    "LANE_SPAN_PHASE",
    "LANE_SPLIT",
    "LANE_TARGET",
    "LANE_TRUNCATE",
    "MAX_SPAN_WORDS",
    "TOKEN_ID_DTYPES",
    "CollateSettings",
    "GroupPlan",
    "collate",
    "crop_rows",
    "flatten_rows",
    "group_apply",
    "group_plan",
    "hash_words",
    "lane_values",
    "pad_column",
    "pair_instances",
    "span_tables",
    "trim_padding",
]

# The integer dtypes every kernel takes, for token ids and the columns aligned with them.
TOKEN_ID_DTYPES: tuple[str, ...]
# Label of a position that is not predicted.
IGNORE_INDEX: int
# Longest span / n-gram of span masking, in words.
MAX_SPAN_WORDS: int
# `ends_word` table values: the next token's own `starts_word` decides / it starts a word / it
# continues this token's word.
ENDS_WORD_NONE: int
ENDS_WORD_BREAK: int
ENDS_WORD_JOIN: int

# Lanes of a row's random streams (`rust/rng.rs`, `rust/words.rs`, `rust/pairs.rs`).
LANE_SELECT: int
LANE_REPLACE: int
LANE_RANDOM_TOKEN: int
LANE_CROP: int
LANE_SPAN_LENGTH: int
LANE_SPAN_PHASE: int
LANE_TARGET: int
LANE_SPLIT: int
LANE_NEXT: int
LANE_OTHER_DOC: int
LANE_OTHER_START: int
LANE_TRUNCATE: int

def flatten_rows(
    rows: list[list[int] | tuple[int, ...]],
    name: str,
    none: int | None = None,
    bools: bool = False,
) -> tuple[np.ndarray, np.ndarray]: ...
def hash_words(seed: int, words: list[int]) -> int: ...
def lane_values(row_key: int, lane: int, n: int) -> np.ndarray: ...

@final
class CollateSettings:
    """A collator's settings, validated when built; `masking=None`: labels copy the ids."""

    def __new__(
        cls,
        *,
        masking: Literal["token", "word", "span", "ngram"] | None,
        mlm_probability: float,
        mask_replace_prob: float,
        random_replace_prob: float,
        mask_count: Literal["bernoulli", "exact"],
        max_predictions: int | None,
        replace_per: Literal["word", "token"],
        span_geometric_p: float,
        max_span_length: int,
        max_ngram: int,
        padding_side: str,
        key_mode: Literal["row_index", "content"],
    ) -> CollateSettings: ...
    @property
    def masks_words(self) -> bool: ...

def collate(
    settings: CollateSettings,
    vocab: TokenizerTables,
    columns: Columns,
    key_words: np.ndarray,
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None: ...
def pad_column(
    values: np.ndarray,
    starts: np.ndarray,
    lens: np.ndarray,
    fill: int,
    padding_side: str,
    out: np.ndarray,
) -> None: ...
def trim_padding(
    rows: Ragged,
    pad: TokenizerTables,
    padding_side: str,
    attention: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]: ...
def crop_rows(
    settings: CollateSettings,
    rows: Ragged,
    content: Ragged,
    max_length: int,
    template: tuple[tuple[int, ...], tuple[int, ...]],
    key_words: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
def span_tables(
    units: str,
    probability: float,
    span_geometric_p: float,
    max_length: int,
) -> tuple[int, np.ndarray, np.ndarray]: ...

@final
class GroupPlan:
    """Where each block of a grouped batch comes from."""

    @property
    def n_blocks(self) -> int: ...
    @property
    def out_len(self) -> int: ...
    @property
    def source_tokens(self) -> int: ...
    @property
    def dropped_tokens(self) -> int: ...
    def offsets(self) -> np.ndarray: ...

def group_plan(
    offset_chunks: list[np.ndarray],
    *,
    block_size: int,
    prefix: int,
    suffix: int,
    separator: bool,
    tail: Literal["drop", "pad", "keep"],
) -> GroupPlan: ...
def group_apply(
    plan: GroupPlan,
    chunks: list[np.ndarray],
    *,
    like: np.ndarray,
    constant: int | None,
    prefix: list[int],
    suffix: list[int],
    separator: int,
    pad: int,
    column: str,
) -> np.ndarray: ...
def pair_instances(
    doc_offsets: np.ndarray,
    sent_offsets: np.ndarray,
    tokens: np.ndarray,
    template: PairTemplate,
    *,
    max_num_tokens: int,
    short_seq_prob: float,
    nsp_probability: float,
    task: Literal["nsp", "sop"],
    key_words: np.ndarray,
    dupe_factor: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

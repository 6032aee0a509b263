"""Private compiled kernels of mlmkit (hand-written stub)."""

from typing import Any, final

import numpy as np

__all__ = [
    "LANE_RANDOM_TOKEN",
    "LANE_REPLACE",
    "LANE_SELECT",
    "collate_batch",
    "flatten_rows",
    "hash_words",
    "lane_values",
    "pad_column",
    "trim_padding",
]
# Whole-word and span masking.
__all__ += ["LANE_SPAN_LENGTH", "LANE_SPAN_PHASE", "span_tables"]
# Corpus preprocessing (issue 4).
__all__ += [
    "GroupPlan",
    "LANE_NEXT",
    "LANE_OTHER_DOC",
    "LANE_OTHER_START",
    "LANE_SPLIT",
    "LANE_TARGET",
    "LANE_TRUNCATE",
    "group_apply",
    "group_plan",
    "pair_instances",
]

LANE_SELECT: int
LANE_REPLACE: int
LANE_RANDOM_TOKEN: int

def flatten_rows(
    rows: list[list[int] | tuple[int, ...]],
    name: str,
    none: int | None = None,
    bools: bool = False,
) -> tuple[np.ndarray, np.ndarray]: ...
def collate_batch(
    values: np.ndarray,
    starts: np.ndarray,
    lens: np.ndarray,
    special_mask: np.ndarray | None,
    is_special: np.ndarray,
    random_ids: np.ndarray,
    key_words: np.ndarray,
    keyed: bool,
    mlm: bool,
    probability: float,
    mask_replace_prob: float,
    random_replace_prob: float,
    exact: bool,
    max_predictions: int | None,
    mask_id: int,
    pad_id: int | None,
    left: bool,
    out_ids: np.ndarray,
    out_labels: np.ndarray,
    out_attention: np.ndarray,
    words: dict[str, Any] | None = None,
    attention: np.ndarray | None = None,
) -> None: ...
def pad_column(
    values: np.ndarray, starts: np.ndarray, lens: np.ndarray, fill: int, left: bool, out: np.ndarray
) -> None: ...
def trim_padding(
    values: np.ndarray,
    starts: np.ndarray,
    lens: np.ndarray,
    pad_id: int | None,
    pad_is_unique: bool,
    left: bool,
    name: str,
    attention: np.ndarray | None = None,
) -> int: ...
def hash_words(seed: int, words: list[int]) -> int: ...
def lane_values(row_key: int, lane: int, n: int) -> np.ndarray: ...

# Whole-word and span masking.
LANE_SPAN_LENGTH: int
LANE_SPAN_PHASE: int

def span_tables(
    units: str, probability: float, span_geometric_p: float, max_length: int
) -> tuple[int, np.ndarray, np.ndarray]: ...

# -- corpus preprocessing (issue 4) ------------------------------------------------------------

LANE_TARGET: int
LANE_SPLIT: int
LANE_NEXT: int
LANE_OTHER_DOC: int
LANE_OTHER_START: int
LANE_TRUNCATE: int

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
    block_size: int,
    prefix: int,
    suffix: int,
    separator: bool,
    tail: str,
) -> GroupPlan: ...
def group_apply(
    plan: GroupPlan,
    chunks: list[np.ndarray],
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
    max_num_tokens: int,
    short_seq_prob: float,
    nsp_probability: float,
    sop: bool,
    key_words: np.ndarray,
    dupe_factor: int,
    prefix: list[int],
    middle: list[int],
    suffix: list[int],
    prefix_types: list[int],
    middle_types: list[int],
    suffix_types: list[int],
    a_type: int,
    b_type: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

# Cropping to max_length.
__all__ += ["LANE_CROP", "crop_rows"]

LANE_CROP: int

def crop_rows(
    values: np.ndarray,
    starts: np.ndarray,
    lens: np.ndarray,
    content_starts: np.ndarray,
    content_lens: np.ndarray,
    max_length: int,
    prefix: list[int],
    suffix: list[int],
    key_words: np.ndarray,
    keyed: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

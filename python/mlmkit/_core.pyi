"""Private compiled kernels of mlmkit (hand-written stub)."""

from typing import Any

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

LANE_SELECT: int
LANE_REPLACE: int
LANE_RANDOM_TOKEN: int

def flatten_rows(
    rows: list[list[int] | tuple[int, ...]], name: str, none: int | None = None
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
    pad_id: int,
    left: bool,
    out_ids: np.ndarray,
    out_labels: np.ndarray,
    out_attention: np.ndarray,
    words: dict[str, Any] | None = None,
) -> None: ...
def pad_column(
    values: np.ndarray, starts: np.ndarray, lens: np.ndarray, fill: int, left: bool, out: np.ndarray
) -> None: ...
def trim_padding(
    values: np.ndarray, starts: np.ndarray, lens: np.ndarray, pad_id: int, name: str
) -> int: ...
def hash_words(seed: int, words: list[int]) -> int: ...
def lane_values(row_key: int, lane: int, n: int) -> np.ndarray: ...

# Whole-word and span masking.
LANE_SPAN_LENGTH: int
LANE_SPAN_PHASE: int

def span_tables(
    units: str, probability: float, span_geometric_p: float, max_length: int
) -> tuple[int, np.ndarray, np.ndarray]: ...

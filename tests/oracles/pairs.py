"""A pure-Python version of `SentencePairs`' algorithm: the executable specification, the test
oracle and the speed baseline (benchmarks/test_bench_pairs.py).

`create_instances_from_document` below keeps the shape of Google's function of the same name in
`create_pretraining_data.py` (lists of token lists, `extend`, `del tokens[0]` / `pop()`), with
its random draws made through a small interface so that either

* `CounterRandom`: the counter-based streams of `rust/rng.rs` (`rng`) keyed like `rust/pairs.rs`,
  which reproduces `SentencePairs` exactly, or
* `PythonRandom`: Python's `random.Random`, as Google's script uses

can drive it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mlmkit import _core
from mlmkit.pairs import PAIRS
from mlmkit.seeding import split64
from mlmkit.templates import PairTemplate

from .rng import M32, hash_words, index, lane, threshold

CONTENT_MUL = 0x9E3779B1
LANE_TARGET = _core.LANE_TARGET
LANE_SPLIT = _core.LANE_SPLIT
LANE_NEXT = _core.LANE_NEXT
LANE_OTHER_DOC = _core.LANE_OTHER_DOC
LANE_OTHER_START = _core.LANE_OTHER_START
LANE_TRUNCATE = _core.LANE_TRUNCATE


class CounterRandom:
    """The draws of one document, as `rust/pairs.rs` makes them."""

    def __init__(self, key_words: Sequence[int], pass_index: int, document: list[list[int]]):
        content = [0, 1, 2, 3]
        for i, t in enumerate(t for s in document for t in s):
            content[i % 4] = (content[i % 4] * CONTENT_MUL + t) & M32
        words = [*key_words, pass_index, len(document), *(len(s) for s in document), *content]
        self.key = hash_words(0, words)
        self.truncations = 0

    def _at(self, lane_id: int, i: int) -> int:
        return lane(self.key, lane_id, i)

    def short(self, p: float) -> bool:
        return self._at(LANE_TARGET, 0) < threshold(p)

    def target_length(self, max_num_tokens: int) -> int:  # randint(2, max_num_tokens)
        return 2 + index(self._at(LANE_TARGET, 1), max_num_tokens - 1)

    def a_end(self, k: int, m: int) -> int:  # randint(1, m - 1)
        return 1 + index(self._at(LANE_SPLIT, k), m - 1)

    def coin(self, k: int, p: float) -> bool:
        return self._at(LANE_NEXT, k) < threshold(p)

    def other_document(self, k: int, n_docs: int, own: int) -> int:
        if n_docs == 1:
            return own
        r = index(self._at(LANE_OTHER_DOC, k), n_docs - 1)
        return r + 1 if r >= own else r

    def start(self, k: int, n: int) -> int:  # randint(0, n - 1)
        return index(self._at(LANE_OTHER_START, k), n)

    def cut_front(self) -> bool:
        v = self._at(LANE_TRUNCATE, self.truncations)
        self.truncations += 1
        return v < (1 << 31)


class PythonRandom:
    """The same draws from `random.Random`, as Google's script makes them (one generator)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def short(self, p: float) -> bool:
        return self.rng.random() < p

    def target_length(self, max_num_tokens: int) -> int:
        return self.rng.randint(2, max_num_tokens)

    def a_end(self, k: int, m: int) -> int:
        return self.rng.randint(1, m - 1)

    def coin(self, k: int, p: float) -> bool:
        return self.rng.random() < p

    def other_document(self, k: int, n_docs: int, own: int) -> int:
        if n_docs == 1:
            return own
        r = self.rng.randint(0, n_docs - 2)
        return r + 1 if r >= own else r

    def start(self, k: int, n: int) -> int:
        return self.rng.randint(0, n - 1)

    def cut_front(self) -> bool:
        return self.rng.random() < 0.5


@dataclass
class Instance:
    tokens_a: list[int]
    tokens_b: list[int]
    label: int
    # the chunk had one sentence, so B had to come from another document (label 1)
    forced: bool


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng) -> None:
    """Truncates a pair of sequences to a maximum sequence length."""
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_num_tokens:
            break
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        # We want to sometimes truncate from the front and sometimes from the
        # back to add more randomness and avoid biases.
        if rng.cut_front():
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


def create_instances_from_document(
    all_documents: list[list[list[int]]],
    document_index: int,
    max_num_tokens: int,
    short_seq_prob: float,
    nsp_probability: float,
    sop: bool,
    rng,
) -> list[Instance]:
    """Creates `TrainingInstance`s for a single document."""
    document = all_documents[document_index]
    # We *usually* want to fill up the entire sequence since we are padding
    # to `max_seq_length` anyways, so short sequences are generally wasted
    # computation. However, we *sometimes* want to use shorter sequences.
    target_seq_length = max_num_tokens
    if rng.short(short_seq_prob):
        target_seq_length = rng.target_length(max_num_tokens)
    instances = []
    current_chunk: list[list[int]] = []
    current_length = 0
    k = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                # `a_end` is how many segments from `current_chunk` go into the `A`
                # (first) sentence.
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.a_end(k, len(current_chunk))
                tokens_a: list[int] = []
                for j in range(a_end):
                    tokens_a.extend(current_chunk[j])
                tokens_b: list[int] = []
                coin = rng.coin(k, nsp_probability)
                # Random next
                if len(current_chunk) == 1 or (not sop and coin):
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    random_document_index = rng.other_document(
                        k, len(all_documents), document_index
                    )
                    random_document = all_documents[random_document_index]
                    random_start = rng.start(k, len(random_document))
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # We didn't actually use these segments so we "put them back" so
                    # they don't go to waste.
                    num_unused_segments = len(current_chunk) - a_end
                    i -= num_unused_segments
                # Sentence order: swap A and B
                elif sop and coin:
                    is_random_next = True
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                    tokens_a, tokens_b = tokens_b, tokens_a
                # Actual next
                else:
                    is_random_next = False
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert len(tokens_a) >= 1
                assert len(tokens_b) >= 1
                instances.append(
                    Instance(tokens_a, tokens_b, int(is_random_next), len(current_chunk) == 1)
                )
                k += 1
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def sentence_pairs(
    documents: list[list[list[int]]],
    template: PairTemplate,
    *,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    nsp_probability: float = 0.5,
    task: str = "nsp",
    seed: int = 0,
    dupe_factor: int = 1,
    python_random: bool = False,
) -> dict[str, list]:
    """The instances of one batch of documents (lists of token-id sentences) as columns, like
    `SentencePairs` returns them (label under "label"), plus "forced": whether the instance's
    chunk had a single sentence, so its label was not drawn."""
    documents = [[s for s in doc if s] for doc in documents]
    max_num_tokens = max_seq_length - template.n_special
    key_words = [PAIRS, *split64(seed)]
    shared = PythonRandom(random.Random(seed)) if python_random else None
    out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "label": [], "forced": []}
    for pass_index in range(dupe_factor):
        for d, doc in enumerate(documents):
            rng = shared or CounterRandom(key_words, pass_index, doc)
            for inst in create_instances_from_document(
                documents, d, max_num_tokens, short_seq_prob, nsp_probability, task == "sop", rng
            ):
                t = template
                out["input_ids"].append(
                    [*t.prefix, *inst.tokens_a, *t.middle, *inst.tokens_b, *t.suffix]
                )
                out["token_type_ids"].append(
                    [
                        *t.prefix_types,
                        *[t.a_type] * len(inst.tokens_a),
                        *t.middle_types,
                        *[t.b_type] * len(inst.tokens_b),
                        *t.suffix_types,
                    ]
                )
                out["label"].append(inst.label)
                out["forced"].append(inst.forced)
    return out

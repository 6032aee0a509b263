"""`--seq_schedule 128:0.9,512:0.1`: short sequences first. Blocks are cut at the largest
length; the training batches are cropped to each stage's length (`SequenceLengthSchedule`);
evaluation stays at the full length with fixed masks."""

from __future__ import annotations

from typing import Any

from .arguments import MaskingArguments
from .errors import CliError

FLAG = "--seq_schedule"


def parse(text: str) -> list[tuple[float, int]]:
    """`LENGTH:FRACTION,...` as `[(fraction, length), ...]`, checked as the callback checks it."""
    from mlmkit.sequence_length import check_stages

    stages: list[Any] = []
    for part in text.split(","):
        length, sep, fraction = part.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            stages.append((float(fraction), int(length)))
        except ValueError:
            raise CliError(
                f"{FLAG}: {part.strip()!r} is not LENGTH:FRACTION (e.g. {FLAG} 128:0.9,512:0.1)"
            ) from None
    try:
        return list(check_stages(stages))
    except (TypeError, ValueError) as e:
        raise CliError(f"{FLAG}: {e}") from None


def resolve(
    masking: MaskingArguments, objective: str, given: frozenset[str], preprocessed: bool
) -> None:
    """Cut blocks at the schedule's largest length (refusing a --block_size that differs)."""
    if masking.seq_schedule is None:
        return
    largest = parse(masking.seq_schedule)[-1][1]
    if objective != "mlm":
        raise CliError(
            f"{FLAG} crops MLM blocks; sentence pairs (--objective {objective}) are not cropped"
        )
    if (preprocessed or "block_size" in given) and masking.block_size != largest:
        where = "the preprocessed corpus has blocks" if preprocessed else "--block_size is"
        raise CliError(
            f"{FLAG}: blocks are cut at its largest length, {largest}, but {where} "
            f"{masking.block_size} tokens; make them agree"
        )
    masking.block_size = largest


def attach(trainer: Any, collator: Any, masking: MaskingArguments) -> None:
    if masking.seq_schedule is None:
        return
    import mlmkit

    stages = parse(masking.seq_schedule)
    try:
        mlmkit.SequenceLengthSchedule(collator, stages).attach(trainer)
    except ValueError as e:  # a length the tokenizer's special tokens leave no room in
        raise CliError(f"{FLAG}: {e}") from None

"""`mlmkit pretrain --seq_schedule LENGTH:FRACTION,...`: blocks at the largest length, training
batches cropped stage by stage, evaluation at the full length; bad schedules exit 2."""

from __future__ import annotations

import json

import pytest

from mlmkit.__main__ import main
from mlmkit.cli.arguments import MaskingArguments
from mlmkit.cli.errors import CliError
from mlmkit.cli.seq_schedule import parse, resolve

from .test_cli import TINY_MODEL, TINY_TRAINING, write_corpus


def test_pretrain_with_a_schedule_switches_at_the_fraction(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "animals.txt")
    out = tmp_path / "out"
    argv = ["pretrain", "--corpus", str(corpus), "--output_dir", str(out), "--max_steps", "40"]
    code = main(argv + TINY_MODEL + TINY_TRAINING + ["--seq_schedule", "16:0.75,64:0.25"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["block_size"] == 64
    history = metrics["log_history"]
    switches = [
        (h["step"], h["max_length"]) for h in history if "max_length" in h and "loss" not in h
    ]
    assert switches == [(0, 16), (30, 64)]
    logged = {h["step"]: h["max_length"] for h in history if "loss" in h}
    assert logged == {5: 16, 10: 16, 15: 16, 20: 16, 25: 16, 30: 16, 35: 64, 40: 64}
    # the fixed-mask evaluation runs on the full blocks at every evaluation
    evals = [h for h in history if "eval_mlm_perplexity" in h]
    assert len(evals) >= 3 and evals[-1]["eval_mlm_perplexity"] < evals[0]["eval_mlm_perplexity"]
    assert "cropped by --seq_schedule 16:0.75,64:0.25" in capsys.readouterr().out


def test_parse():
    assert parse("128:0.9,512:0.1") == [(0.9, 128), (0.1, 512)]
    assert parse(" 64:0.5 , 128:0.5") == [(0.5, 64), (0.5, 128)]
    for text, message in [
        ("128", "'128' is not LENGTH:FRACTION"),
        ("128:x,512:0.1", "'128:x' is not LENGTH:FRACTION"),
        ("0.9:128,0.1:512", "'0.9:128' is not LENGTH:FRACTION"),
        ("512:0.5,128:0.5", "max_length 128 does not increase"),
        ("128:0.9,512:0.2", "sum to 1.1, not 1"),
        ("128:0,512:1", "fraction of steps must be a number in (0, 1]"),
        ("0:0.5,512:0.5", "max_length must be a positive integer"),
    ]:
        with pytest.raises(CliError, match="^--seq_schedule: ") as info:
            parse(text)
        assert message in str(info.value)


def test_blocks_are_cut_at_the_largest_length():
    masking = MaskingArguments(seq_schedule="32:0.5,128:0.5")
    resolve(masking, "mlm", frozenset(), preprocessed=False)
    assert masking.block_size == 128
    masking = MaskingArguments(seq_schedule="32:0.5,128:0.5", block_size=128)
    resolve(masking, "mlm", frozenset({"block_size", "seq_schedule"}), preprocessed=False)
    assert masking.block_size == 128


BAD = {
    "format": (["--seq_schedule", "128"], "--seq_schedule: '128' is not LENGTH:FRACTION"),
    "decreasing": (["--seq_schedule", "64:0.5,32:0.5"], "max_length 32 does not increase"),
    "sum": (["--seq_schedule", "32:0.5,64:0.6"], "fractions of steps sum to 1.1, not 1"),
    "block size": (
        ["--block_size", "32", "--seq_schedule", "16:0.5,64:0.5"],
        "blocks are cut at its largest length, 64, but --block_size is 32 tokens",
    ),
    "pairs": (
        ["--objective", "mlm+nsp", "--seq_schedule", "16:0.5,64:0.5"],
        "sentence pairs (--objective mlm+nsp) are not cropped",
    ),
    "positions": (
        ["--seq_schedule", "64:0.5,256:0.5"],
        "--block_size (256) exceeds --max_position_embeddings (128)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_schedules_exit_2_with_a_message(case, tmp_path, capsys):
    flags, message = BAD[case]
    assert main(["pretrain", "--output_dir", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and err.count("error:") == 1


def test_a_stage_too_short_for_the_special_tokens_exits_2(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "animals.txt", n_docs=30)
    argv = ["pretrain", "--corpus", str(corpus), "--output_dir", str(tmp_path / "out")]
    code = main(argv + TINY_MODEL + TINY_TRAINING + ["--seq_schedule", "2:0.5,64:0.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--seq_schedule: max_length=2 is too small" in err and "[CLS] [SEP]" in err, err

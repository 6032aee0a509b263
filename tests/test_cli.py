"""The `mlmkit` command line end to end, with tiny models on a tiny corpus (CPU, seconds each).

Commands run in-process through `mlmkit.cli.main.main`, as `mlmkit ...` would run them."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from mlmkit.cli.main import main

ANIMALS = "cat dog horse bird fish mouse lion tiger bear wolf".split()
FOODS = "apples bread fish grain seeds cheese meat honey berries nuts".split()
PLACES = "garden river forest field house barn lake hill cave farm".split()

# Tiny model and short training: seconds on 2 CPU cores.
TINY_MODEL = [
    "--num_hidden_layers", "2",
    "--hidden_size", "64",
    "--num_attention_heads", "2",
    "--intermediate_size", "128",
    "--max_position_embeddings", "64",
    "--block_size", "64",
    "--vocab_size", "300",
]  # fmt: skip
TINY_TRAINING = [
    "--per_device_train_batch_size", "16",
    "--per_device_eval_batch_size", "32",
    "--learning_rate", "3e-3",
    "--logging_steps", "5",
    "--eval_steps", "20",
    "--max_eval_samples", "32",
    "--use_cpu",
    "--disable_tqdm", "true",
]  # fmt: skip


def write_corpus(path, n_docs=80, seed=0):
    """Documents of simple, learnable sentences; blank lines between documents."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randint(3, 6)):
            a, f, p = rng.choice(ANIMALS), rng.choice(FOODS), rng.choice(PLACES)
            sentences.append(f"The {a} eats {f} in the {p}. The {p} is near the {a}.")
        docs.append("\n".join(sentences))
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "animals.txt")


def check_outputs(out, metrics_before_after=True):
    metrics = json.loads((out / "metrics.json").read_text())
    with Image.open(out / "training_curves.png") as png:
        assert png.format == "PNG" and png.size[0] > 100
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert list(out.glob("*.safetensors"))
    if metrics_before_after:
        before, after = metrics["eval_mlm_perplexity_before"], metrics["eval_mlm_perplexity_after"]
        assert math.isfinite(before) and math.isfinite(after)
        assert after < before, (before, after)
    return metrics


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    """One MLM pretraining run with canaries, shared by the fill-mask and probe tests."""
    out = tmp_path_factory.mktemp("pretrain")
    code = main(
        ["pretrain", "--corpus", str(corpus), "--output_dir", str(out), "--max_steps", "150"]
        + ["--canaries", "2", "--canary_repeats", "40", "--mlm_probability", "0.25"]
        + TINY_MODEL
        + TINY_TRAINING
    )
    assert code == 0
    return out


def test_pretrain_mlm_writes_model_metrics_and_plot(pretrained, capsys):
    metrics = check_outputs(pretrained)
    assert metrics["objective"] == "mlm"
    assert metrics["model"]["class"] == "BertForMaskedLM"
    assert metrics["global_step"] == 150
    evals = [h for h in metrics["log_history"] if "eval_mlm_perplexity" in h]
    assert [h["step"] for h in evals] == [0, 20, 40, 60, 80, 100, 120, 140, 150]
    # An untrained model's perplexity is about the vocabulary size (~170 here). 150 tiny steps
    # learn the token frequencies (this corpus's unigram perplexity is about 19), not yet context:
    # over 20 runs the eval perplexity ended at 13-22 and the accuracy (of ~50-200 masked tokens)
    # at 0.22-0.37, varying with the WordPiece vocabulary (huggingface/tokenizers#1794).
    # Context use is what the full default run shows (README).
    before, after = metrics["eval_mlm_perplexity_before"], metrics["eval_mlm_perplexity_after"]
    assert before > 100
    assert after < before / 5, (before, after)
    assert metrics["eval_mlm_accuracy_after"] > 0.15
    assert metrics["fill_mask_examples"]
    canaries = json.loads((pretrained / "canaries.json").read_text())
    assert len(canaries["inserted"]) == 2 and len(canaries["controls"]) == 5


@pytest.mark.parametrize("objective", ["mlm+nsp", "mlm+sop"])
def test_pretrain_with_sentence_pairs(objective, corpus, tmp_path, capsys):
    code = main(
        ["pretrain", "--corpus", str(corpus), "--output_dir", str(tmp_path), "--max_steps", "40"]
        + ["--objective", objective]
        + TINY_MODEL
        + TINY_TRAINING
    )
    assert code == 0
    metrics = check_outputs(tmp_path)
    assert metrics["model"]["class"] == "BertForPreTraining"
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [
        "BertForPreTraining"
    ]
    printed = capsys.readouterr().out
    assert "eval perplexity (fixed masks" in printed
    # The saved model serves fill-mask as a masked LM.
    assert main(["fill-mask", "--model", str(tmp_path), "the cat eats [MASK] in the garden."]) == 0


@pytest.mark.parametrize(
    "tokenizer_type, masking", [("bpe", "word"), ("unigram", "span"), ("wordpiece", "word")]
)
def test_pretrain_tokenizer_types_and_masking(tokenizer_type, masking, corpus, tmp_path, capsys):
    code = main(
        ["pretrain", "--corpus", str(corpus), "--output_dir", str(tmp_path), "--max_steps", "40"]
        + ["--tokenizer_type", tokenizer_type, "--masking", masking]
        + TINY_MODEL
        + TINY_TRAINING
    )
    assert code == 0
    metrics = check_outputs(tmp_path)
    assert metrics["tokenizer"]["type"] == tokenizer_type
    assert metrics["model"]["masking"] == masking
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert saved["model"]["type"] == {"bpe": "BPE", "unigram": "Unigram"}.get(
        tokenizer_type, "WordPiece"
    )


def test_adapt_lowers_perplexity_of_pretrained_bert(bert_dir, corpus, tmp_path, capsys):
    code = main(
        ["adapt", "--model", str(bert_dir), "--corpus", str(corpus), "--output_dir", str(tmp_path)]
        + ["--max_steps", "20", "--learning_rate", "5e-4", "--block_size", "64"]
        + ["--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32"]
        + ["--max_eval_samples", "32", "--eval_steps", "20", "--use_cpu", "--disable_tqdm", "true"]
    )
    assert code == 0
    metrics = check_outputs(tmp_path)
    assert metrics["command"] == "adapt" and metrics["base_model"] == str(bert_dir)
    out = capsys.readouterr().out
    assert f"{metrics['eval_mlm_perplexity_before']:.1f} at step 0 ->" in out


def fill_mask_output(capsys):
    line = capsys.readouterr().out.strip()
    return [
        (tok, float(score.rstrip(")")))
        for tok, score in (p.rsplit(" (", 1) for p in line.split(", "))
    ]


def test_fill_mask_prints_top_k(pretrained, capsys):
    from transformers import AutoTokenizer

    assert (
        main(["fill-mask", "--model", str(pretrained), "the cat eats [MASK] in the garden."]) == 0
    )
    predictions = fill_mask_output(capsys)
    assert len(predictions) == 5
    scores = [s for _, s in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    vocab = AutoTokenizer.from_pretrained(pretrained).get_vocab()
    assert all(token in vocab for token, _ in predictions)


def test_fill_mask_reports_each_mask(pretrained, capsys):
    assert (
        main(["fill-mask", "--model", str(pretrained), "the [MASK] eats [MASK].", "--top_k", "3"])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["mask 1", "mask 2"]


def test_probe_memorised_canaries_rank_above_controls(pretrained, tmp_path, capsys):
    report = tmp_path / "probe.json"
    assert main(["probe", "--model", str(pretrained), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    inserted = [c for c in result["canaries"] if c["inserted"]]
    controls = [c for c in result["canaries"] if not c["inserted"]]
    assert len(inserted) == 2 and len(controls) == 5
    assert all(c["candidates"] == 200 for c in result["canaries"])
    # Memorised secrets rank near the top; unseen ones are uniform over the 200 candidates.
    assert max(c["rank"] for c in inserted) < min(c["rank"] for c in controls), result["canaries"]
    assert min(c["exposure"] for c in inserted) > 4.0
    for c in result["canaries"]:
        assert c["exposure"] == pytest.approx(math.log2(200) - math.log2(c["rank"]))
    assert len(result["prompts"]) == 8
    printed = capsys.readouterr().out
    assert "Canary exposure" in printed and "mean exposure" in printed


def test_probe_prompt_agrees_with_fill_mask(pretrained, tmp_path, capsys):
    text = "the cat eats apples in the [MASK]."
    assert main(["fill-mask", "--model", str(pretrained), text]) == 0
    (first, p_first), (second, p_second) = fill_mask_output(capsys)[:2]
    prompts = tmp_path / "prompts.tsv"
    prompts.write_text(f"{text}\t{first}\n{text}\t{second}\n", encoding="utf-8")
    report = tmp_path / "r.json"
    argv = ["probe", "--model", str(pretrained), "--prompts", str(prompts), "--json", str(report)]
    assert main(argv) == 0
    a, b = json.loads(report.read_text())["prompts"]
    assert (a["answer"], a["rank"], a["top"][0]) == (first, 1, first)
    assert (b["answer"], b["rank"]) == (second, 2)
    assert a["probability"] == pytest.approx(p_first, abs=0.006)
    assert b["probability"] == pytest.approx(p_second, abs=0.006)


def test_bench_quick(capsys):
    assert main(["bench", "--quick"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| case | collator |")
    assert sum("| mlmkit |" in row for row in table) == 4


def not_masked_lm(tmp_path):
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    config.architectures = ["BertForSequenceClassification"]
    config.save_pretrained(tmp_path / "classifier")
    return tmp_path / "classifier"


def gpt2_dir(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(tmp_path / "gpt2")
    return tmp_path / "gpt2"


def no_mask_token(tmp_path, bert_dir):
    target = tmp_path / "nomask"
    shutil.copytree(bert_dir, target)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config["mask_token"] = None
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    tok = json.loads((target / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "[MASK]"]
    (target / "tokenizer.json").write_text(json.dumps(tok))
    return target


def bad_file(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    return str(tmp_path / name)


BAD_INPUTS = {
    "missing corpus": (
        lambda p, b: ["pretrain", "--corpus", str(p / "nope.txt")],
        "corpus input not found",
    ),
    "empty corpus": (
        lambda p, b: ["pretrain", "--corpus", bad_file(p, "empty.txt", b"\n\n")],
        "no sentences",
    ),
    "non-UTF-8 corpus": (
        lambda p, b: ["pretrain", "--corpus", bad_file(p, "latin1.txt", b"ok\ncaf\xe9\n")],
        "latin1.txt:2: invalid UTF-8",
    ),
    "one-document corpus": (
        lambda p, b: ["pretrain", "--corpus", bad_file(p, "one.txt", b"one document only.\n")],
        "at least 2",
    ),
    "adapt a classifier": (
        lambda p, b: ["adapt", "--model", str(not_masked_lm(p))],
        "not a masked language model",
    ),
    "adapt a causal LM": (
        lambda p, b: ["adapt", "--model", str(gpt2_dir(p))],
        "'gpt2' model, which is not a masked language model",
    ),
    "model dir missing": (
        lambda p, b: ["fill-mask", "--model", str(p / "none"), "a [MASK]"],
        "model directory not found",
    ),
    "not a model dir": (
        lambda p, b: ["probe", "--model", str(p)],
        "is not a model directory",
    ),
    "tokenizer without mask token": (
        lambda p, b: ["fill-mask", "--model", str(no_mask_token(p, b)), "a [MASK]"],
        "has no mask token",
    ),
    "no mask in fill-mask text": (
        lambda p, b: ["fill-mask", "--model", str(b), "there is no mask here"],
        "the text has no mask token: write [MASK]",
    ),
    "prompt file without answers": (
        lambda p, b: ["probe", "--model", str(b), "--prompts", bad_file(p, "p.txt", b"x [MASK]\n")],
        "p.txt:1: expected",
    ),
    "bad masking flags": (
        lambda p, b: ["pretrain", "--mlm_probability", "1.5"],
        "--mlm_probability must be a number in [0, 1], got 1.5",
    ),
    "replacement probabilities over 1": (
        lambda p, b: ["pretrain", "--mask_replace_prob", "0.9", "--random_replace_prob", "0.2"],
        "mask_replace_prob + random_replace_prob must not exceed 1, got 0.9 + 0.2",
    ),
    "bad eval masking rate": (
        lambda p, b: ["pretrain", "--eval_mlm_probability", "0"],
        "--eval_mlm_probability must be in (0, 1]",
    ),
    "bad model shape": (
        lambda p, b: ["pretrain", "--hidden_size", "30", "--num_attention_heads", "4"],
        "must be a multiple of",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_a_message(case, tmp_path, bert_dir, capsys):
    make_argv, message = BAD_INPUTS[case]
    argv = make_argv(tmp_path, bert_dir)
    if argv[0] in ("pretrain", "adapt"):
        argv += ["--output_dir", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert err.count("error:") == 1


def test_pretrain_defaults_differ_from_adapt_defaults():
    from mlmkit.cli.parser import build_parser

    parser = build_parser()
    pretrain = parser.parse_args(["pretrain"])
    assert (pretrain.mlm_probability, pretrain.eval_mlm_probability) == (0.4, 0.15)
    assert (pretrain.dropout, pretrain.position_init) == (0.0, "sinusoidal")
    assert (pretrain.max_steps, pretrain.learning_rate) == (2500, 3e-3)
    adapt = parser.parse_args(["adapt", "--model", "m"])
    assert (adapt.mlm_probability, adapt.eval_mlm_probability) == (0.15, 0.15)
    assert (adapt.max_steps, adapt.learning_rate) == (200, 1e-4)


@pytest.mark.parametrize("command", ["pretrain", "adapt", "fill-mask", "probe", "bench"])
def test_help_lists_the_flags(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: mlmkit " + command)
    if command in ("pretrain", "adapt"):
        assert "--eval_mlm_probability" in text and "--learning_rate" in text
    if command == "pretrain":
        assert "--position_init {sinusoidal,random}" in text


def test_evaluation_masks_at_its_own_rate(bert_tokenizer):
    """Training at --mlm_probability 0.4 while the fixed-mask evaluation masks 15%."""
    import numpy as np

    from mlmkit.cli.arguments import MaskingArguments
    from mlmkit.cli.pretraining import make_collator

    masking = MaskingArguments(mlm_probability=0.4, eval_mlm_probability=0.15)
    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(1000, 20000, 64).tolist()} for _ in range(64)]
    # 4096 tokens: the masked share's standard deviation is <= 0.008; tolerances are >= 3.5 sd.
    for for_eval, share in ((False, 0.4), (True, 0.15)):
        batch = make_collator(bert_tokenizer, masking, seed=0, for_eval=for_eval)(rows)
        masked = (batch["labels"] != -100).float().mean().item()
        assert masked == pytest.approx(share, abs=0.03), (for_eval, masked)


def test_pretrain_is_reproducible_given_the_seed(corpus, tmp_path, capsys):
    """Same seed, same run: tokenizer (byte-level BPE), initial weights, masks and data order.
    (WordPiece training in `tokenizers` breaks ties in hash-map order, huggingface/tokenizers#1794,
    so its vocabulary, and with it the run, can differ slightly between runs.)"""
    histories = []
    for name in ("a", "b"):
        argv = ["pretrain", "--corpus", str(corpus), "--output_dir", str(tmp_path / name)]
        argv += ["--max_steps", "30", "--tokenizer_type", "bpe", *TINY_MODEL, *TINY_TRAINING]
        assert main(argv) == 0
        history = json.loads((tmp_path / name / "metrics.json").read_text())["log_history"]
        timing = ("runtime", "per_second")
        histories.append(
            [{k: v for k, v in h.items() if not any(t in k for t in timing)} for h in history]
        )
    losses = [h["loss"] for h in histories[0] if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert histories[0] == histories[1]


def test_pretrain_starts_from_sinusoidal_positions(corpus, tmp_path, monkeypatch, capsys):
    import torch

    from mlmkit.cli import pretraining
    from mlmkit.cli.positions import sinusoids

    seen = {}
    real_train = pretraining.train

    def spy(run, model, *args):
        seen["start"] = model.bert.embeddings.position_embeddings.weight.detach().clone()
        return real_train(run, model, *args)

    monkeypatch.setattr(pretraining, "train", spy)
    argv = ["pretrain", "--corpus", str(corpus), "--max_steps", "5"] + TINY_MODEL + TINY_TRAINING
    assert main([*argv, "--output_dir", str(tmp_path / "sin")]) == 0
    expected = (sinusoids(64, 64) * 0.02 * 2**0.5).float()
    torch.testing.assert_close(seen["start"], expected)
    assert main([*argv, "--output_dir", str(tmp_path / "rnd"), "--position_init", "random"]) == 0
    assert seen["start"].std().item() == pytest.approx(0.02, rel=0.1)
    assert (seen["start"] - expected).abs().max() > 0.01
    metrics = json.loads((tmp_path / "rnd" / "metrics.json").read_text())
    assert metrics["model"]["position_init"] == "random"


def test_unknown_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--no_such_flag", "1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no_such_flag" in capsys.readouterr().err


def test_python_dash_m_entry_point_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mlmkit", "fill-mask", "--model", str(tmp_path), "x [MASK]"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"mlmkit fill-mask: error: {tmp_path} is not a model directory (it has no config.json)"
    )

"""FixedMaskPerplexityCallback: fixed masks, the figure it reports and where that figure goes."""

from __future__ import annotations

import math
import types
import warnings

import datasets
import evaluate
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import mlmkit
from mlmkit.metrics import compute_metrics, preprocess_logits_for_metrics, token_statistics

from .conftest import CORPUS

WORDS = sorted({w for line in CORPUS[:8] for w in line.split()})


def sentences(n, seed, words=WORDS, low=4, high=14):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, int(rng.integers(low, high)))) for _ in range(n)]


def tokenized(tok, texts, special_mask=False):
    return datasets.Dataset.from_dict({"text": texts}).map(
        lambda b: tok(b["text"], return_special_tokens_mask=special_mask),
        batched=True,
        remove_columns=["text"],
    )


def tiny_config(tok, **kw):
    settings = dict(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
    )
    return BertConfig(**{**settings, **kw})


def tiny_model(tok, seed=0):
    torch.manual_seed(seed)
    return BertForMaskedLM(tiny_config(tok))


@pytest.fixture(scope="module")
def eval_set(bpe_tokenizer):
    return tokenized(bpe_tokenizer, sentences(40, seed=1))


def by_row(batches, pad_id):
    """{row content: (masked ids, labels)} over all batches (rows are right-padded)."""
    table = {}
    for b in batches:
        restored = torch.where(b["labels"] != -100, b["labels"], b["input_ids"])
        for r, ids, labels, att in zip(
            restored, b["input_ids"], b["labels"], b["attention_mask"], strict=True
        ):
            n = int(att.sum())
            table[tuple(r[:n].tolist())] = (ids[:n].tolist(), labels[:n].tolist())
    return table


def test_same_figure_every_time_and_equal_to_an_independent_computation(bpe_tokenizer, eval_set):
    model = tiny_model(bpe_tokenizer)
    collator = mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer)
    cb = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8, seed=3)
    first, second = cb.evaluate(model), cb.evaluate(model)
    assert first == second
    assert set(first) == {"eval_mlm_loss", "eval_mlm_perplexity", "eval_mlm_accuracy"}

    # Independently: the same keyed masks, one unpadded row at a time, log-softmax in float64.
    masker = mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer, keyed=True, seed=3)
    nll, count, hits = 0.0, 0, 0
    model.eval()
    with torch.no_grad():
        for row in eval_set:
            b = masker([{"input_ids": row["input_ids"]}])
            logp = torch.log_softmax(model(input_ids=b["input_ids"]).logits.double(), -1)[0]
            sel = b["labels"][0] != -100
            target = b["labels"][0][sel]
            nll -= logp[sel].gather(1, target[:, None]).sum().item()
            hits += int((logp[sel].argmax(-1) == target).sum())
            count += int(sel.sum())
    assert count > 50
    assert first["eval_mlm_loss"] == pytest.approx(nll / count, rel=1e-5)
    assert first["eval_mlm_perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert first["eval_mlm_accuracy"] == pytest.approx(hits / count, abs=1e-12)
    # The masks are a pure function of (seed, content): another seed gives other masks.
    other = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8, seed=4)
    assert by_row(other.batches(), bpe_tokenizer.pad_token_id) != by_row(
        cb.batches(), bpe_tokenizer.pad_token_id
    )


def test_batch_size_workers_and_device_path_do_not_change_masks_or_figures(bpe_tokenizer, eval_set):
    model = tiny_model(bpe_tokenizer)
    collator = mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer, mask_count="exact")
    make = lambda **kw: mlmkit.FixedMaskPerplexityCallback(eval_set, collator, **kw)  # noqa: E731
    small, large = make(batch_size=4), make(batch_size=16, num_workers=2)
    pad = bpe_tokenizer.pad_token_id
    assert by_row(small.batches(), pad) == by_row(large.batches(), pad)
    a, b = small.evaluate(model), large.evaluate(model)
    for key in a:  # forward passes over other batch shapes round differently in float32
        assert a[key] == pytest.approx(b[key], rel=1e-6)
    # The torch masking path (used on accelerators) gives the very same batches and figures.
    on_torch = make(batch_size=4, mask_on_device=True)
    for x, y in zip(small.batches(), on_torch.batches(), strict=True):
        assert x.keys() == y.keys()
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert on_torch.evaluate(model) == a


def test_special_tokens_mask_column_is_honoured_on_both_paths(bpe_tokenizer):
    data = tokenized(bpe_tokenizer, sentences(12, seed=5), special_mask=True)
    # mark a few ordinary tokens as special too: they must never be masked
    data = data.map(lambda r: {"special_tokens_mask": [1, 1, *r["special_tokens_mask"][2:]]})
    collator = mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer, mlm_probability=0.6)
    cpu = mlmkit.FixedMaskPerplexityCallback(data, collator, batch_size=5)
    dev = mlmkit.FixedMaskPerplexityCallback(data, collator, batch_size=5, mask_on_device=True)
    for x, y in zip(cpu.batches(), dev.batches(), strict=True):
        assert torch.equal(x["labels"], y["labels"]) and torch.equal(x["input_ids"], y["input_ids"])
        assert (x["labels"][:, :2] == -100).all()
        assert "special_tokens_mask" not in x


def test_mlm_logits_of_pretraining_models_are_used(bpe_tokenizer, eval_set):
    mlm = tiny_model(bpe_tokenizer)
    pre = BertForPreTraining(tiny_config(bpe_tokenizer))
    missing = pre.load_state_dict(mlm.state_dict(), strict=False).missing_keys
    assert all("seq_relationship" in k or "pooler" in k for k in missing)
    collator = mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer)
    cb = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8)
    assert cb.evaluate(pre) == cb.evaluate(mlm)


def test_eval_mode_no_grad_restored_train_mode_and_bf16_autocast(bpe_tokenizer, eval_set):
    model = tiny_model(bpe_tokenizer)
    model.train()
    collator = mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer)
    cb = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8)
    seen = []
    hook = model.register_forward_hook(
        lambda m, i, o: seen.append((m.training, torch.is_grad_enabled(), o.logits.dtype))
    )
    fp32 = cb.evaluate(model)
    bf16 = cb.evaluate(model, types.SimpleNamespace(bf16=True, fp16=False))
    hook.remove()
    assert model.training
    assert {s[:2] for s in seen} == {(False, False)}
    assert torch.bfloat16 in {s[2] for s in seen}
    assert bf16["eval_mlm_loss"] == pytest.approx(fp32["eval_mlm_loss"], rel=2e-2)
    assert bf16["eval_mlm_loss"] != fp32["eval_mlm_loss"]


class Recorder(TrainerCallback):
    """Stands in for a reporting integration (TensorBoard, W&B): records what on_log receives."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def train_args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        learning_rate=5e-3,
        report_to=[],
        use_cpu=True,
        seed=0,
        logging_steps=5,
        save_strategy="no",
        disable_tqdm=True,
    )
    base.update(kw)
    return TrainingArguments(**base)


def test_figures_reach_log_history_integrations_best_model_and_evaluate(
    bpe_tokenizer, eval_set, tmp_path
):
    tok = bpe_tokenizer
    train = tokenized(tok, sentences(96, seed=2))
    collator = mlmkit.DataCollatorForLanguageModeling(tok, seed=0)
    model = tiny_model(tok)
    args = train_args(
        tmp_path,
        max_steps=12,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="steps",
        save_steps=3,
        load_best_model_at_end=True,
        metric_for_best_model="eval_mlm_perplexity",
        greater_is_better=False,
        save_total_limit=10,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=eval_set,
        data_collator=collator,
    )
    integration = Recorder()
    trainer.callback_handler.callbacks.insert(1, integration)  # where report_to puts them
    mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8).attach(trainer)
    names = [type(c).__name__ for c in trainer.callback_handler.callbacks]
    assert names.index("FixedMaskPerplexityCallback") < names.index("Recorder")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no misconfiguration warning for this setup
        trainer.train()

    evals = [h for h in trainer.state.log_history if "eval_runtime" in h]
    assert [h["step"] for h in evals] == [3, 6, 9, 12]
    ppl = [h["eval_mlm_perplexity"] for h in evals]
    assert all(math.isfinite(p) for p in ppl)
    assert len(set(ppl)) == 4  # the model changes, the masks do not: so does the figure
    assert ppl[-1] < ppl[0]
    for h in evals:
        assert h["eval_mlm_perplexity"] == pytest.approx(math.exp(h["eval_mlm_loss"]))
        assert 0.0 <= h["eval_mlm_accuracy"] <= 1.0
    seen = [log for log in integration.logs if "eval_runtime" in log]
    assert [log["eval_mlm_perplexity"] for log in seen] == ppl
    # best model: the lowest perplexity
    best = int(np.argmin(ppl))
    assert trainer.state.best_metric == ppl[best]
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{evals[best]['step']}")
    # evaluate() returns the figures, and on fixed masks they repeat exactly
    # (the best checkpoint is loaded at the end).
    r1, r2 = trainer.evaluate(), trainer.evaluate()
    assert r1["eval_mlm_perplexity"] == r2["eval_mlm_perplexity"] == ppl[best]
    assert trainer.state.log_history[-1]["eval_mlm_perplexity"] == ppl[best]


def test_passed_in_callbacks_reaches_log_history_but_warns_about_integrations(
    bpe_tokenizer, eval_set, tmp_path
):
    tok = bpe_tokenizer
    collator = mlmkit.DataCollatorForLanguageModeling(tok, seed=0)
    cb = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=16)
    integration = Recorder()
    trainer = Trainer(
        model=tiny_model(tok),
        args=train_args(tmp_path, max_steps=2),
        train_dataset=tokenized(tok, sentences(16, seed=3)),
        eval_dataset=eval_set,
        data_collator=collator,
        callbacks=[cb],
    )
    trainer.callback_handler.callbacks.insert(1, integration)
    result = trainer.evaluate()
    assert "eval_mlm_perplexity" in result
    assert "eval_mlm_perplexity" in trainer.state.log_history[-1]
    assert "eval_mlm_perplexity" not in integration.logs[-1]  # integrations ran before it
    args = types.SimpleNamespace(report_to=["wandb"], metric_for_best_model=None)
    with pytest.warns(UserWarning, match=r"callback.attach\(trainer\)"):
        cb.on_train_begin(args, trainer.state, trainer.control)
    args = types.SimpleNamespace(
        report_to=[], metric_for_best_model="mlm_perplexity", greater_is_better=True
    )
    with pytest.warns(UserWarning, match="greater_is_better=False"):
        cb.on_train_begin(args, trainer.state, trainer.control)


def test_before_training_figure_and_trainer_loop_pair_and_evaluate_module(
    bpe_tokenizer, eval_set, tmp_path
):
    """compute_metrics / preprocess_logits_for_metrics with Trainer's own loop on fixed masks, and
    the evaluate module, give the callback's figures."""
    tok = bpe_tokenizer
    model = tiny_model(tok)
    keyed = mlmkit.DataCollatorForLanguageModeling(tok, keyed=True, seed=9)
    cb = mlmkit.FixedMaskPerplexityCallback(
        eval_set, keyed, batch_size=8, seed=9, evaluate_before_training=True
    )
    trainer = Trainer(
        model=model,
        args=train_args(tmp_path, max_steps=1, learning_rate=0.0),
        train_dataset=tokenized(tok, sentences(8, seed=4)),
        eval_dataset=eval_set,
        data_collator=keyed,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )
    theirs = trainer.evaluate()
    ours = cb.evaluate(model)
    for key in ours:
        assert theirs[key] == pytest.approx(ours[key], rel=1e-6), key
    metric = evaluate.load(str(mlmkit.metrics.EVALUATE_MODULE))
    with torch.no_grad():
        for batch in cb.batches():
            labels = batch.pop("labels")
            metric.add_batch(**token_statistics(model(**batch), labels))
    module = metric.compute()
    assert module["mlm_perplexity"] == pytest.approx(ours["eval_mlm_perplexity"], rel=1e-9)
    assert module["mlm_accuracy"] == ours["eval_mlm_accuracy"]
    # evaluate_before_training puts the untrained model's figure first in log_history
    trainer.add_callback(cb)
    trainer.train()
    first = next(h for h in trainer.state.log_history if "eval_mlm_loss" in h)
    assert first["step"] == 0 and first["eval_mlm_loss"] == ours["eval_mlm_loss"]


def test_bad_inputs_raise_clear_errors(bpe_tokenizer, eval_set, tmp_path):
    tok = bpe_tokenizer
    collator = mlmkit.DataCollatorForLanguageModeling(tok)
    no_ids = datasets.Dataset.from_dict({"text": ["a b c"]})
    with pytest.raises(ValueError, match="no 'input_ids' column"):
        mlmkit.FixedMaskPerplexityCallback(no_ids, collator)
    with pytest.raises(ValueError, match="no 'input_ids' column"):
        mlmkit.FixedMaskPerplexityCallback([{"ids": [1, 2]}], collator)
    with pytest.raises(ValueError, match="empty"):
        mlmkit.FixedMaskPerplexityCallback([], collator)
    with pytest.raises(TypeError, match="map-style"):
        mlmkit.FixedMaskPerplexityCallback(iter([{"input_ids": [1]}]), collator)
    import transformers

    with pytest.raises(TypeError, match="mlmkit collator"):
        mlmkit.FixedMaskPerplexityCallback(
            eval_set, transformers.DataCollatorForLanguageModeling(tok)
        )
    with pytest.raises(ValueError, match="mlm=False"):
        mlmkit.FixedMaskPerplexityCallback(
            eval_set, mlmkit.DataCollatorForLanguageModeling(tok, mlm=False)
        )
    with pytest.raises(ValueError, match="batch_size"):
        mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=0)
    cb = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8)
    torch.manual_seed(0)
    for model in (
        BertModel(tiny_config(tok)),
        BertForSequenceClassification(tiny_config(tok, num_labels=3)),
    ):
        with pytest.raises(ValueError, match="masked-LM"):
            cb.evaluate(model)
        with pytest.raises(ValueError, match="masked-LM"):
            cb.check_model(model)
    small_vocab = BertForMaskedLM(tiny_config(tok, vocab_size=50))
    with pytest.raises(ValueError, match="outside the model's input embeddings"):
        cb.evaluate(small_vocab)
    # and through Trainer: the error comes at train begin, not at the first evaluation
    trainer = Trainer(
        model=BertModel(tiny_config(tok)),
        args=train_args(tmp_path, max_steps=1),
        train_dataset=eval_set,
        data_collator=collator,
        callbacks=[cb],
    )
    with pytest.raises(ValueError, match="masked-LM"):
        trainer.train()
    nothing = mlmkit.FixedMaskPerplexityCallback(
        eval_set, mlmkit.DataCollatorForLanguageModeling(tok, mlm_probability=0.0)
    )
    with pytest.raises(ValueError, match="no masked tokens"):
        nothing.evaluate(tiny_model(tok))


def _rank_figures(rank, world, store_dir, data, tok, out):
    torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{store_dir}/store", rank=rank, world_size=world
    )
    try:
        collator = mlmkit.DataCollatorForLanguageModeling(tok)
        cb = mlmkit.FixedMaskPerplexityCallback(data, collator, batch_size=4)
        rows = sum(int(b["attention_mask"].shape[0]) for b in cb.batches())
        out.put((rank, rows, cb.evaluate(tiny_model(tok))))
    finally:
        torch.distributed.destroy_process_group()


def test_distributed_ranks_share_rows_and_report_the_same_figure(bpe_tokenizer, eval_set, tmp_path):
    ctx = torch.multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_rank_figures, args=(r, 2, tmp_path, eval_set, bpe_tokenizer, out))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, rows0, fig0), (_, rows1, fig1) = results
    assert rows0 + rows1 == len(eval_set) and abs(rows0 - rows1) <= 1
    assert fig0 == fig1  # every rank reports the same figure
    single = mlmkit.FixedMaskPerplexityCallback(
        eval_set, mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer), batch_size=4
    ).evaluate(tiny_model(bpe_tokenizer))
    for key in single:
        assert fig0[key] == pytest.approx(single[key], rel=1e-6)


def test_independent_reference_helpers_agree(bpe_tokenizer):
    """preprocess_logits_for_metrics + compute_metrics against a direct float64 computation."""
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    labels = torch.full((3, 7), -100)
    labels[0, 1], labels[1, 4], labels[2, 0], labels[2, 6] = 3, 10, 0, 5
    logits[2, 0, 0] = 9.0  # a sure hit
    stats = preprocess_logits_for_metrics(logits, labels)
    got = compute_metrics(types.SimpleNamespace(predictions=stats.numpy(), label_ids=labels))
    sel = labels != -100
    nll = F.cross_entropy(logits[sel].double(), labels[sel], reduction="sum").item() / 4
    hits = (logits[sel].argmax(-1) == labels[sel]).sum().item() / 4
    assert got["mlm_loss"] == pytest.approx(nll, rel=1e-6)
    assert got["mlm_perplexity"] == pytest.approx(math.exp(nll), rel=1e-6)
    assert got["mlm_accuracy"] == hits and hits >= 0.25
    with pytest.raises(ValueError, match="preprocess_logits_for_metrics"):
        compute_metrics(types.SimpleNamespace(predictions=logits.numpy(), label_ids=labels))


CLINICAL = [
    "the patient was given {n} mg of {drug} twice daily for {k} days .",
    "blood pressure was {n} over {k} and the {organ} exam was normal .",
    "the {organ} scan showed no signs of {disease} after {k} weeks of {drug} .",
    "dose of {drug} was reduced to {n} mg because of {disease} .",
]
FILLS = dict(
    drug=["metformin", "aspirin", "warfarin", "insulin", "heparin", "ibuprofen"],
    organ=["liver", "kidney", "lung", "heart", "brain"],
    disease=["infection", "bleeding", "fibrosis", "edema", "inflammation"],
)


def clinical_notes(n, seed):
    rng = np.random.default_rng(seed)
    notes = []
    for _ in range(n):
        fills = {k: rng.choice(v) for k, v in FILLS.items()}
        fills.update(n=int(rng.integers(5, 500)), k=int(rng.integers(2, 30)))
        notes.append(str(rng.choice(CLINICAL)).format(**fills))
    return notes


def test_domain_adaptation_of_the_real_bert_lowers_fixed_mask_perplexity(
    bert_tokenizer, bert_dir, tmp_path
):
    tok = bert_tokenizer
    model = BertForMaskedLM.from_pretrained(bert_dir)
    train = tokenized(tok, clinical_notes(240, seed=0))
    held_out = tokenized(tok, clinical_notes(32, seed=1))
    collator = mlmkit.DataCollatorForLanguageModeling(tok, seed=0)
    cb = mlmkit.FixedMaskPerplexityCallback(held_out, collator, batch_size=16)
    args = train_args(
        tmp_path,
        max_steps=16,
        learning_rate=1e-3,
        per_device_train_batch_size=8,
        eval_strategy="steps",
        eval_steps=16,
        eval_on_start=True,
        warmup_steps=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=held_out,
        data_collator=collator,
    )
    cb.attach(trainer)
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_mlm_perplexity" in h]
    assert [h["step"] for h in evals] == [0, 16]
    before, after = evals[0]["eval_mlm_perplexity"], evals[1]["eval_mlm_perplexity"]
    assert after < 0.5 * before, (before, after)
    assert evals[1]["eval_mlm_accuracy"] > evals[0]["eval_mlm_accuracy"]


def test_formatted_datasets_and_a_trainer_whose_log_copies_the_metrics(
    bpe_tokenizer, eval_set, tmp_path
):
    tok = bpe_tokenizer
    model = tiny_model(tok)
    collator = mlmkit.DataCollatorForLanguageModeling(tok)
    plain = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8).evaluate(model)
    for fmt in ("numpy", "torch"):
        cb = mlmkit.FixedMaskPerplexityCallback(eval_set.with_format(fmt), collator, batch_size=8)
        assert cb.evaluate(model) == plain, fmt

    class CopyingTrainer(Trainer):
        def log(self, logs, start_time=None):
            super().log(dict(logs), start_time)

    cb = mlmkit.FixedMaskPerplexityCallback(eval_set, collator, batch_size=8)
    calls = []
    original = cb.evaluate
    cb.evaluate = lambda *a, **k: calls.append(1) or original(*a, **k)
    trainer = CopyingTrainer(
        model=model,
        args=train_args(tmp_path, max_steps=1),
        eval_dataset=eval_set,
        data_collator=collator,
        callbacks=[cb],
    )
    result = trainer.evaluate()
    assert result["eval_mlm_perplexity"] == plain["eval_mlm_perplexity"]
    assert trainer.state.log_history[-1]["eval_mlm_perplexity"] == plain["eval_mlm_perplexity"]
    assert len(calls) == 1  # on_evaluate reused what on_log computed


def test_whole_word_span_and_ngram_masking_on_both_paths(bert_tokenizer):
    """The callback is mode-agnostic: keyed masks from the collator, or from the torch path on the
    device (every masking mode), give the same batches and figures."""
    tok = bert_tokenizer
    data = tokenized(tok, sentences(24, seed=6))
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config(tok))
    for masking in ("word", "span", "ngram"):
        collator = mlmkit.DataCollatorForLanguageModeling(tok, masking=masking, mlm_probability=0.3)
        small = mlmkit.FixedMaskPerplexityCallback(data, collator, batch_size=4)
        large = mlmkit.FixedMaskPerplexityCallback(data, collator, batch_size=16, num_workers=2)
        assert by_row(small.batches(), tok.pad_token_id) == by_row(
            large.batches(), tok.pad_token_id
        )
        on_device = mlmkit.FixedMaskPerplexityCallback(
            data, collator, batch_size=4, mask_on_device=True
        )
        for x, y in zip(small.batches(), on_device.batches(), strict=True):
            assert x.keys() == y.keys()
            assert all(torch.equal(x[k], y[k]) for k in x)
            assert int((x["labels"] != -100).sum()) > 0
        a, b = small.evaluate(model), large.evaluate(model)
        assert a["eval_mlm_perplexity"] == pytest.approx(b["eval_mlm_perplexity"], rel=1e-6)
        assert on_device.evaluate(model) == a
    # Boundaries from a word_ids column are read by the collator only: no device path then.
    with_ids = data.map(lambda r: {"word_ids": list(range(len(r["input_ids"])))})
    collator = mlmkit.DataCollatorForLanguageModeling(tok, masking="word")
    with pytest.raises(ValueError, match=r"word boundaries in \['word_ids'\]"):
        mlmkit.FixedMaskPerplexityCallback(with_ids, collator, mask_on_device=True)
    cb = mlmkit.FixedMaskPerplexityCallback(with_ids, collator, batch_size=4)
    assert by_row(cb.batches(use_torch=True), tok.pad_token_id) == by_row(
        cb.batches(), tok.pad_token_id
    )
    # whole words really are masked together: no '##' continuation masked without its word start
    collator = mlmkit.DataCollatorForLanguageModeling(tok, whole_word_mask=True)
    cb = mlmkit.FixedMaskPerplexityCallback(
        tokenized(tok, ["unbelievable tokenization of hyphenated-words"] * 4), collator
    )
    for batch in cb.batches():
        for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
            pieces = tok.convert_ids_to_tokens(torch.where(labels != -100, labels, ids))
            masked = (labels != -100).tolist()
            for j in range(1, len(pieces)):
                if pieces[j].startswith("##"):
                    assert masked[j] == masked[j - 1]

"""`mlmkit.sparse_mlm_head`: the same loss, gradients, Trainer scaling and checkpoints as the
stock model, for every supported family, on tiny random configs."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments

import mlmkit
from mlmkit.sparse_head import SUPPORTED

VOCAB, B, L = 64, 4, 12
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# Label the pre-training classes' sentence-pair loss takes.
PAIR_LABEL = {
    "BertForPreTraining": "next_sentence_label",
    "AlbertForPreTraining": "sentence_order_label",
}


def bert():
    return transformers.BertConfig(
        vocab_size=VOCAB, max_position_embeddings=32, **TINY, **NO_DROPOUT
    )


def roberta(cls=transformers.RobertaConfig):
    return cls(vocab_size=VOCAB, max_position_embeddings=40, pad_token_id=1, **TINY, **NO_DROPOUT)


def albert():
    return transformers.AlbertConfig(
        vocab_size=VOCAB, embedding_size=8, max_position_embeddings=32, classifier_dropout_prob=0.0,
        **TINY, **NO_DROPOUT,
    )  # fmt: skip


def electra():
    return transformers.ElectraConfig(
        vocab_size=VOCAB, embedding_size=8, max_position_embeddings=32, **TINY, **NO_DROPOUT
    )


def deberta(legacy: bool):
    return transformers.DebertaV2Config(
        vocab_size=VOCAB, max_position_embeddings=32, legacy=legacy, **TINY, **NO_DROPOUT
    )


def distilbert():
    return transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
        max_position_embeddings=32, dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip


def modernbert(sparse_prediction: bool = False):
    return transformers.ModernBertConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=32, pad_token_id=0, bos_token_id=2,
        eos_token_id=3, cls_token_id=2, sep_token_id=3, embedding_dropout=0.0,
        attention_dropout=0.0, mlp_dropout=0.0, sparse_prediction=sparse_prediction,
    )  # fmt: skip


# name -> (model class, config factory)
FAMILIES = {
    "bert": (transformers.BertForMaskedLM, bert),
    "bert-pretraining": (transformers.BertForPreTraining, bert),
    "roberta": (transformers.RobertaForMaskedLM, roberta),
    "xlm-roberta": (
        transformers.XLMRobertaForMaskedLM,
        lambda: roberta(transformers.XLMRobertaConfig),
    ),
    "distilbert": (transformers.DistilBertForMaskedLM, distilbert),
    "albert": (transformers.AlbertForMaskedLM, albert),
    "albert-pretraining": (transformers.AlbertForPreTraining, albert),
    "electra-generator": (transformers.ElectraForMaskedLM, electra),
    "deberta-v2": (transformers.DebertaV2ForMaskedLM, lambda: deberta(False)),
    "deberta-v2-legacy": (transformers.DebertaV2ForMaskedLM, lambda: deberta(True)),
    "modernbert": (transformers.ModernBertForMaskedLM, modernbert),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: torch's thread pool costs more than it gains (seconds per step on a busy
    2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stock_and_sparse(name: str, seed: int = 0):
    cls, config = FAMILIES[name]
    torch.manual_seed(seed)
    stock = cls(config()).train()
    sparse = mlmkit.sparse_mlm_head(copy.deepcopy(stock))
    return stock, sparse


def make_batch(name: str, seed: int = 1, rows: int = B, p: float = 0.3) -> dict[str, torch.Tensor]:
    """Rows of random ids with some padding; row 1 has no label at all."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, L), generator=g)
    mask = torch.ones_like(ids)
    mask[0, L - 3 :] = 0
    ids[0, L - 3 :] = 0
    labels = torch.where((torch.rand(rows, L, generator=g) < p) & (mask == 1), ids, -100)
    labels[1] = -100
    labels[2, 0] = ids[2, 0]  # at least one label
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    pair = PAIR_LABEL.get(FAMILIES[name][0].__name__)
    if pair:
        batch[pair] = torch.randint(0, 2, (rows,), generator=g)
    return batch


def loss_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def assert_same_grads(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)


def mlm_scores(output):
    return output.prediction_logits if hasattr(output, "prediction_logits") else output.logits


@pytest.mark.parametrize("name", list(FAMILIES))
def test_loss_and_every_gradient_equal_the_stock_models(name):
    stock, sparse = stock_and_sparse(name)
    batch = make_batch(name)
    loss_stock, grads_stock = loss_and_grads(stock, batch)
    loss_sparse, grads_sparse = loss_and_grads(sparse, batch)
    torch.testing.assert_close(loss_sparse, loss_stock, rtol=1e-4, atol=0)
    assert len(grads_stock) == len(list(stock.parameters()))  # every parameter got a gradient
    assert_same_grads(grads_stock, grads_sparse)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_training_logits_are_the_scores_at_the_labelled_positions(name):
    stock, sparse = stock_and_sparse(name)
    batch = make_batch(name)
    picked = batch["labels"] != -100
    full = mlm_scores(stock(**batch))
    got = mlm_scores(sparse(**batch))
    assert got.shape == (int(picked.sum()), VOCAB)
    torch.testing.assert_close(got, full[picked], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_eval_mode_and_no_labels_are_the_stock_model(name):
    stock, sparse = stock_and_sparse(name)
    batch = make_batch(name)
    stock.eval()
    sparse.eval()
    with torch.no_grad():
        a, b = stock(**batch), sparse(**batch)
        assert mlm_scores(b).shape == (B, L, VOCAB)
        torch.testing.assert_close(mlm_scores(b), mlm_scores(a), rtol=0, atol=0)
        torch.testing.assert_close(b.loss, a.loss, rtol=0, atol=0)
    sparse.train()
    stock.train()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        a, b = stock(**inputs), sparse(**inputs)
    assert b.loss is None and mlm_scores(b).shape == (B, L, VOCAB)
    torch.testing.assert_close(mlm_scores(b), mlm_scores(a), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["bert", "modernbert", "albert-pretraining"])
def test_a_batch_without_any_label_behaves_as_the_stock_model(name):
    """Stock: NaN loss (a mean over no tokens) and zero gradients; the same here."""
    stock, sparse = stock_and_sparse(name)
    batch = make_batch(name)
    batch["labels"] = torch.full_like(batch["labels"], -100)
    loss_stock, grads_stock = loss_and_grads(stock, batch)
    loss_sparse, grads_sparse = loss_and_grads(sparse, batch)
    assert torch.isnan(loss_stock) and torch.isnan(loss_sparse)
    assert_same_grads(grads_stock, grads_sparse)
    head = grads_sparse[next(n for n in grads_sparse if "decoder" in n or "predictions" in n)]
    assert torch.all(head == 0)


def test_pretraining_without_the_pair_label_keeps_the_stock_outputs():
    stock, sparse = stock_and_sparse("bert-pretraining")
    batch = make_batch("bert-pretraining")
    del batch["next_sentence_label"]
    a, b = stock(**batch), sparse(**batch)
    assert a.loss is None and b.loss is None
    assert b.prediction_logits.shape == (B, L, VOCAB)


def test_labels_given_by_position():
    stock, sparse = stock_and_sparse("bert")
    batch = make_batch("bert")
    args = (batch["input_ids"], batch["attention_mask"], None, None, None, None, None)
    a = stock(*args, batch["labels"])
    b = sparse(*args, batch["labels"])
    torch.testing.assert_close(b.loss, a.loss, rtol=1e-4, atol=0)
    assert b.logits.shape[0] == int((batch["labels"] != -100).sum())


@pytest.mark.parametrize("name", list(FAMILIES))
def test_save_and_reload_give_the_stock_class_and_its_inference_logits(name, tmp_path):
    _, sparse = stock_and_sparse(name)
    cls = FAMILIES[name][0]
    sparse(**make_batch(name)).loss.backward()  # trained a little: hooks have run
    sparse.save_pretrained(tmp_path)
    assert type(sparse) is cls
    reloaded = cls.from_pretrained(tmp_path)
    assert type(reloaded) is cls
    assert reloaded.config.architectures == [cls.__name__]
    auto = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert not auto._forward_pre_hooks  # a stock model
    ids = make_batch(name)["input_ids"]
    sparse.eval()
    with torch.no_grad():
        want = mlm_scores(sparse(input_ids=ids))
        torch.testing.assert_close(mlm_scores(reloaded(input_ids=ids)), want, rtol=0, atol=0)
        torch.testing.assert_close(mlm_scores(auto(input_ids=ids)), want, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["bert", "modernbert", "deberta-v2"])
def test_pickle_and_deepcopy_keep_the_sparse_head(name):
    stock, sparse = stock_and_sparse(name)
    batch = make_batch(name)
    want = stock(**batch).loss
    picked = int((batch["labels"] != -100).sum())
    for clone in (pickle.loads(pickle.dumps(sparse)), copy.deepcopy(sparse)):
        out = clone(**batch)
        assert out.logits.shape == (picked, VOCAB)
        torch.testing.assert_close(out.loss, want, rtol=1e-4, atol=0)
        # The clone's hooks act on the clone, not on the original.
        assert clone.training
        clone.eval()
        assert clone(**batch).logits.shape == (B, L, VOCAB)
        assert sparse.training


def test_calling_twice_adds_nothing():
    _, sparse = stock_and_sparse("bert")
    hooks = len(sparse._forward_pre_hooks)
    assert mlmkit.sparse_mlm_head(sparse) is sparse
    assert len(sparse._forward_pre_hooks) == hooks


def test_modernbert_with_sparse_prediction_already_on_is_left_alone():
    torch.manual_seed(0)
    stock = transformers.ModernBertForMaskedLM(modernbert(sparse_prediction=True)).train()
    sparse = mlmkit.sparse_mlm_head(copy.deepcopy(stock))
    batch = make_batch("modernbert")
    loss_stock, grads_stock = loss_and_grads(stock, batch)
    loss_sparse, grads_sparse = loss_and_grads(sparse, batch)
    torch.testing.assert_close(loss_sparse, loss_stock, rtol=1e-4, atol=0)
    assert_same_grads(grads_stock, grads_sparse)
    sparse.eval()  # its own setting: sparse in eval mode too, as the stock model with it
    assert sparse(**batch).logits.shape[0] == int((batch["labels"] != -100).sum())


def test_modernbert_switches_back_when_the_forward_raises():
    _, sparse = stock_and_sparse("modernbert")
    batch = make_batch("modernbert")
    with pytest.raises(RuntimeError):
        sparse(input_ids=batch["input_ids"], labels=batch["labels"][:, :3])
    assert sparse.sparse_prediction is False
    sparse.eval()
    assert sparse(**batch).logits.shape == (B, L, VOCAB)


def test_unsupported_classes_are_a_type_error_naming_the_supported_ones():
    with pytest.raises(TypeError, match="BertForMaskedLM.*ModernBertForMaskedLM") as e:
        mlmkit.sparse_mlm_head(transformers.BertForSequenceClassification(bert()))
    assert "BertForSequenceClassification" in str(e.value)
    with pytest.raises(TypeError, match="supports"):
        mlmkit.sparse_mlm_head(torch.nn.Linear(2, 2))

    class Custom(transformers.BertForMaskedLM):
        def forward(self, *args, **kwargs):
            return super().forward(*args, **kwargs)

    with pytest.raises(TypeError, match="overrides the forward of BertForMaskedLM"):
        mlmkit.sparse_mlm_head(Custom(bert()))

    class Renamed(transformers.BertForMaskedLM):
        pass

    assert isinstance(mlmkit.sparse_mlm_head(Renamed(bert())), Renamed)
    assert len(SUPPORTED) == 10


# ---- Trainer: gradient accumulation and num_items_in_batch --------------------------------


class Gradients(TrainerCallback):
    """The accumulated gradients just before the optimizer step."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


class Rows(torch.utils.data.Dataset):
    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["input_ids"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.batch.items()}


def stack(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def accumulated(model, batch, tmp_path) -> tuple[Trainer, Gradients]:
    grads = Gradients()
    args = TrainingArguments(
        str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=1,
        learning_rate=1e-3, max_grad_norm=0.0, use_cpu=True, report_to="none",
        save_strategy="no", disable_tqdm=True, seed=3, dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=Rows(batch), data_collator=stack, callbacks=[grads]
    )
    trainer.train()
    return trainer, grads


@pytest.mark.parametrize("name", list(FAMILIES))
def test_trainer_gradient_accumulation_gives_the_stock_gradients(name, tmp_path):
    stock, sparse = stock_and_sparse(name)
    batch = make_batch(name)
    t_stock, g_stock = accumulated(stock, batch, tmp_path / "stock")
    t_sparse, g_sparse = accumulated(sparse, batch, tmp_path / "sparse")
    assert t_sparse.model_accepts_loss_kwargs == t_stock.model_accepts_loss_kwargs
    assert len(g_stock.grads) == len(list(stock.parameters()))
    assert_same_grads(g_stock.grads, g_sparse.grads)
    loss = [t.state.log_history[-1]["train_loss"] for t in (t_stock, t_sparse)]
    assert loss[1] == pytest.approx(loss[0], rel=1e-4)
    # After the step the weights are the same too.
    for (n, a), (_, b) in zip(stock.named_parameters(), sparse.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=n)

"""Loading a masked language model and its tokenizer from a directory, with clear errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .errors import CliError

# Heads that predict tokens at masked positions (BertForPreTraining holds an MLM head too).
_MLM_ARCHITECTURES = ("ForMaskedLM", "ForPreTraining")


def load_tokenizer(directory: str | Path) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CliError(f"cannot load a tokenizer from {directory}: {_first_line(e)}") from None
    if tokenizer.mask_token is None:
        raise CliError(
            f"the tokenizer in {directory} has no mask token: a masked language model needs one "
            "(e.g. [MASK] or <mask>)"
        )
    return tokenizer


def load_masked_lm(directory: str | Path, device: str | None = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from `directory`; `device` None picks a GPU if present."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    path = Path(directory)
    if not path.is_dir():
        raise CliError(f"model directory not found: {directory}")
    if not (path / "config.json").is_file():
        raise CliError(f"{directory} is not a model directory (it has no config.json)")
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise CliError(f"cannot read the model config in {directory}: {_first_line(e)}") from None
    if config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise CliError(
            f"{directory} holds a {config.model_type!r} model, which is not a masked language model"
        )
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith(_MLM_ARCHITECTURES) for a in architectures):
        raise CliError(
            f"{directory} holds a {', '.join(architectures)}, not a masked language model (its "
            "checkpoint has no masked-LM head)"
        )
    tokenizer = load_tokenizer(path)
    quiet = logging.getLogger("transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # BertForPreTraining checkpoints: unused NSP head is expected
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise CliError(f"cannot load the model in {directory}: {_first_line(e)}") from None
    finally:
        quiet.setLevel(level)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise CliError(
            f"the checkpoint in {directory} lacks masked-LM weights ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''})"
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise CliError(
            f"the tokenizer in {directory} has {len(tokenizer)} tokens but the model's embeddings "
            f"only {model.get_input_embeddings().num_embeddings}"
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tokenizer


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def with_sparse_head(model: Any) -> bool:
    """Train `model` with `mlmkit.sparse_mlm_head` when its class is supported (True); other
    masked-LM classes train with their stock head, with a note saying so (False)."""
    import mlmkit

    try:
        mlmkit.sparse_mlm_head(model)
    except TypeError:
        print(
            f"note: {type(model).__name__} trains with its stock head (the vocabulary projection "
            "at every position): mlmkit.sparse_mlm_head does not support it"
        )
        return False
    return True

"""Load a chat model and its tokenizer for the transformers backend, and place it on devices.

Kept apart from ``transformers_backend``, whose job is batching and generation: this is the part
that touches the file system, the Hugging Face cache and GPU memory, and that turns transformers'
many ways of failing (a missing file, a model without chat template, an out-of-memory) into our
one-line errors.
``local_folder`` runs when the backend is built, so a mistyped path fails before any work starts;
``load_chat_model`` runs in the backend's worker thread, so loading never blocks the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attrprompt_builder.errors import (
    AttrPromptError,
    ConfigError,
    MissingDependencyError,
    one_line,
)

__all__ = ["DTYPES", "INSTALL_TORCH", "LoadedModel", "load_chat_model", "local_folder"]

DTYPES = ("auto", "bfloat16", "float16", "float32")
INSTALL_TORCH = "the transformers backend needs torch: pip install 'attrprompt-builder[local]'"


@dataclass
class LoadedModel:
    torch: Any
    model: Any
    tokenizer: Any
    eos_ids: frozenset[int]
    pad_id: int


def load_chat_model(
    source: str,
    *,
    model_name: str,
    is_local: bool,
    device_map: str | None,
    dtype: str,
    trust_remote_code: bool,
) -> LoadedModel:
    """Load ``source`` (a folder or a Hub id) ready for left-padded batch generation.

    ``model_name`` is what the user passed, the name every error message shows.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise MissingDependencyError(f"{INSTALL_TORCH} ({one_line(err)})") from err
    options = {"trust_remote_code": trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"model {model_name!r} has no chat template; pass a chat/instruct model "
                "(one whose tokenizer defines chat_template)"
            )
        if device_map is None and torch.cuda.is_available():
            device_map = "auto"  # accelerate spreads the weights over the GPUs
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, device_map=device_map, **options)
    except AttrPromptError:
        raise
    except torch.OutOfMemoryError as err:
        raise ConfigError(
            f"not enough GPU memory to load model={model_name!r}; pass dtype='bfloat16', a smaller model, "
            "or device_map='auto' with CPU offload"
        ) from err
    except (OSError, ValueError, KeyError) as err:
        raise _not_loadable(err, model_name=model_name, is_local=is_local) from err
    model.eval()
    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
    candidates = (tokenizer.pad_token_id, model.generation_config.pad_token_id, min(eos_ids, default=None))
    pad_id = next((token for token in candidates if token is not None), None)
    if pad_id is None:
        raise ConfigError(f"model {model_name!r} defines neither a pad nor an EOS token; pass a chat model")
    tokenizer.pad_token_id = pad_id  # padding is masked out, so any id will do
    return LoadedModel(torch, model, tokenizer, eos_ids, pad_id)


def _not_loadable(err: Exception, *, model_name: str, is_local: bool) -> AttrPromptError:
    reason = one_line(err)
    if is_local:
        return ConfigError(
            f"model={model_name!r}: cannot load a chat model from this folder ({reason}); pass a folder "
            "written by save_pretrained (config.json, weights, tokenizer files)"
        )
    return MissingDependencyError(
        f"model={model_name!r} is neither a local folder nor loadable from the Hugging Face cache "
        f"({reason}); pass a local folder holding the model, or download it once with network access"
    )


def local_folder(model: str) -> Path | None:
    """The model's folder when ``model`` names one; raises when it looks like a path that is missing."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model={model!r} is not usable; pass a Hugging Face model id or a local folder")
    path = Path(model).expanduser()
    if path.is_dir():
        # Checked here because transformers 5 builds an empty GPT-2 tokenizer rather than fail without them.
        missing = [name for name in ("config.json", "tokenizer_config.json") if not (path / name).is_file()]
        if missing:
            raise ConfigError(
                f"model={model!r}: this folder has no {' or '.join(missing)}; pass a folder where both the model "
                "and its tokenizer were written with save_pretrained"
            )
        return path.resolve()
    # "org/name" is a Hub id; anything else with a path shape is a folder the user expected to exist.
    looks_like_path = path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1 or "\\" in model
    if path.exists() or looks_like_path:
        problem = "is a file, not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"model={model!r}: {problem}; pass a folder written by save_pretrained, or a Hugging Face model id")
    return None

"""Load a chat model and its tokenizer for the transformers backend, and place it on devices.

Kept apart from ``transformers_backend``, whose job is batching and generation: this is the part
that touches the file system, the Hugging Face cache and GPU memory, and that turns transformers'
many ways of failing (a missing file, a model without chat template, an out-of-memory) into our
one-line errors.
``local_folder`` runs when the backend is built, so a mistyped path fails before any work starts;
``load_chat_model`` runs in the backend's worker thread, so loading never blocks the event loop.

A Hub id loads through one quick question to the Hub (``hub_reachable``): when it gets no answer, the
model comes from the local cache only, or the load fails at once naming the other choices. Left to
itself, transformers retries an unreachable Hub with backoff for close to a minute per model.
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
from attrprompt_builder.hub import HUB_PROBE_TIMEOUT_S, hub_reachable  # shared with the dedup embedder

__all__ = [
    "DTYPES",
    "HUB_PROBE_TIMEOUT_S",
    "INSTALL_TORCH",
    "LoadedModel",
    "hub_reachable",
    "load_chat_model",
    "local_folder",
]

DTYPES = ("auto", "bfloat16", "float16", "float32")
# The package is installed from a checkout, so `pip install 'attrprompt-builder[local]'` would look for it on an index.
INSTALL_TORCH = "the transformers backend needs torch: pip install torch==2.13.0 (see the README's Install section)"


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
    cache_only = not is_local and _from_cache_only(source, model_name=model_name)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise MissingDependencyError(f"{INSTALL_TORCH} ({one_line(err)})") from err
    options = {"trust_remote_code": trust_remote_code, "local_files_only": cache_only}
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
        if cache_only:  # a cached model with files missing: the Hub that could complete it is out of reach
            raise _offline(model_name, partly=one_line(err)) from err
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


def _from_cache_only(repo_id: str, *, model_name: str) -> bool:
    """Whether a Hub id must load from the local cache (the Hub is out of reach); raises when it is not there."""
    if hub_reachable():
        return False
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        raise _offline(model_name)
    return True


def _offline(model_name: str, *, partly: str | None = None) -> MissingDependencyError:
    from huggingface_hub import constants

    from attrprompt_builder.client.backends import DEFAULT_MODEL

    # The default model is named as such: its user passed no model and would not know where it came from.
    subject = f"the default model {model_name!r}" if model_name == DEFAULT_MODEL else f"model={model_name!r}"
    where = f"is only partly in the Hugging Face cache ({partly})" if partly else "is not in the Hugging Face cache"
    why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
    return MissingDependencyError(
        f"{subject} {where} and {why}; pass a local model folder (model='PATH'), an endpoint (endpoint='URL') "
        "or a provider (provider='auto'), or run once with Hub access to download it"
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

"""``attrprompt generate`` as a function: build the dataset, write the folder, write the card."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import datasets

from attrprompt_builder import errors
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.dataset.builder import AttrPromptBuilder, refuse_num_proc_on_ray
from attrprompt_builder.errors import AttrPromptError, ConfigError, MissingDependencyError, one_line
from attrprompt_builder.recipe.presets import is_preset
from attrprompt_builder.redaction import redact

__all__ = ["build_dataset", "card_embedder", "generate_folder", "make_builder", "rewrite_card", "unwrap_error"]


# How our error reads in a num_proc worker's traceback text (``multiprocess.pool.RemoteTraceback``).
_WORKER_ERROR = re.compile(r"^attrprompt_builder\.errors\.(\w+): (.+)$", re.MULTILINE)


def unwrap_error(err: BaseException) -> BaseException:
    """Our own error inside datasets' ``DatasetGenerationError`` wrapper, if there is one.

    With ``num_proc`` the worker's exception crosses a process boundary as traceback text only (the pool
    attaches a ``RemoteTraceback``); our error is rebuilt from that text, so it is still one line.
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (AttrPromptError, KeyboardInterrupt)):
            return seen
        if type(seen).__name__ == "RemoteTraceback":
            found = _WORKER_ERROR.search(str(seen))
            error_class = getattr(errors, found.group(1), None) if found else None
            if isinstance(error_class, type) and issubclass(error_class, AttrPromptError):
                return error_class(found.group(2))  # type: ignore[union-attr]
        seen = seen.__cause__ or seen.__context__
    return err


def make_builder(
    preset_or_recipe: str, *, cache_dir: str | None = None, token: str | None = None, **config_kwargs: Any
) -> AttrPromptBuilder:
    """A builder for a preset name or a recipe path (CLI arguments arrive as one string)."""
    if is_preset(preset_or_recipe):
        return AttrPromptBuilder(config_name=preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs)
    return AttrPromptBuilder(config=preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs)


def build_dataset(builder: AttrPromptBuilder, *, num_proc: int | None = None) -> datasets.Dataset:
    try:
        builder.download_and_prepare(num_proc=num_proc)
    except datasets.exceptions.DatasetGenerationError as err:
        cause = unwrap_error(err)
        if cause is err:
            raise
        raise cause from None  # the wrapper adds nothing a user can act on
    return builder.as_dataset(split="train")


def generate_folder(
    preset_or_recipe: str,
    output_dir: str | Path,
    *,
    num_proc: int | None = None,
    cache_dir: str | None = None,
    token: str | None = None,
    card: bool = True,
    overwrite: bool = False,
    **config_kwargs: Any,
) -> Path | str:
    """Generate a dataset and write it, with its card, to ``output_dir`` (what ``attrprompt generate`` does).

    Everything that would fail after paying is checked first: the output folder (not a file, writable,
    and empty or written by this tool unless ``overwrite``), ``num_proc``, the cache and journal
    folders, a token for HF Inference Providers, that the dedup embedder can be found, and with
    ``ray`` that the cluster answers.

    ``output_dir`` may be an fsspec URL (``s3://bucket/run``): the folder is written here first and
    uploaded once complete, and that URL is returned; on Ray the workers' reply segments go under it
    (``replies_dir``).
    """
    remote = _remote_url(output_dir)
    if config_kwargs.get("ray") not in (None, False):
        _cluster_defaults(config_kwargs, output=remote or str(Path(output_dir).expanduser().absolute()), num_proc=num_proc)
    if remote is not None:
        with tempfile.TemporaryDirectory(prefix="attrprompt-output-") as staging:
            generate_folder(
                preset_or_recipe, staging, num_proc=num_proc, cache_dir=cache_dir, token=token, card=card, **config_kwargs
            )
            _upload(Path(staging), remote)
        return remote
    folder = layout.check_output_folder(output_dir, overwrite=overwrite)
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise ConfigError(f"num_proc: got {num_proc!r}; use a whole number >= 1, or leave it out for one process")
    for field, path in (("cache_dir", cache_dir), ("journal_dir", config_kwargs.get("journal_dir"))):
        if path:
            layout.require_writable_folder(Path(path).expanduser(), field=field)
    builder = make_builder(preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs)
    _require_provider_token(builder, token)
    if builder.config.dedup_spec().threshold is not None or builder.config.label_check is not None:
        from attrprompt_builder.filters.dedup.embedders import check_embedder

        check_embedder(builder.config.embedder)  # before datasets starts the build and its progress bars
    if isinstance(builder.config.ray, str):  # validation made True "auto"
        _join_cluster(builder.config.ray, replies=config_kwargs["replies_dir"])
    dataset = build_dataset(builder, num_proc=num_proc)
    try:
        layout.write_folder(dataset, folder, builder=builder, stats=builder.stats)
        if card:
            from attrprompt_builder.card.render import write_card

            write_card(folder, embedder=card_embedder(builder.config.embedder, precision=builder.config.embed_precision))
    except OSError as err:
        raise ConfigError(
            f"output_dir: writing {str(folder)!r} failed ({err.strerror or one_line(err)}); the rows are kept in the "
            "datasets cache: make room or pass another folder, and rerun (nothing is sent again)"
        ) from err
    return folder


def _remote_url(output_dir: str | Path) -> str | None:
    """``output_dir`` when it names a filesystem other than this machine's (an fsspec URL), else None."""
    text = str(output_dir)
    if "://" not in text or text.startswith("file://"):
        return None
    return text


def _upload(staging: Path, url: str) -> None:
    from fsspec.core import url_to_fs

    try:
        fs, root = url_to_fs(url)
        fs.put(str(staging) + "/", root, recursive=True)
    except (OSError, ValueError, ImportError) as err:
        raise ConfigError(
            f"output_dir: uploading to {redact(url)!r} failed ({redact(one_line(err))}); the rows are kept in the "
            "datasets cache and the journal: fix access to it (or pass a local folder) and rerun (nothing is sent again)"
        ) from err


def _cluster_defaults(config_kwargs: dict[str, Any], *, output: str, num_proc: int | None) -> None:
    """Refuse a missing ``ray`` and num_proc on Ray, and put the replies beside the rows unless told where."""
    from attrprompt_builder.client.ray_cluster import require_ray

    require_ray()
    refuse_num_proc_on_ray(num_proc)  # before joining: a wrong option starts no cluster
    if not config_kwargs.get("replies_dir"):  # beside the rows: storage the workers can write, by the same token
        config_kwargs["replies_dir"] = output.rstrip("/") + "/" + layout.REPLIES_FOLDER


def _join_cluster(address: str, *, replies: str) -> None:
    """Join the cluster and check every node can write the replies, after the options are validated (a typo
    starts no cluster) and before datasets starts its progress bars (a refusal stays one line)."""
    from attrprompt_builder.client.ray_cluster import check_replies_folder, connect
    from attrprompt_builder.client.segments import require_writable

    require_writable(replies, where="the driver")  # it reads the segments back; and a typo needs no cluster
    connect(address)
    check_replies_folder(replies)


def _require_provider_token(builder: AttrPromptBuilder, token: str | bool | None) -> None:
    """HF Inference Providers refuse every request without a token: say so before the build starts."""
    if builder.config.backend_spec().kind != "providers" or (isinstance(token, str) and token):
        return
    from huggingface_hub import get_token

    if get_token() is None:
        raise ConfigError(
            "token: HF Inference Providers need a Hugging Face token; pass token= or set HF_TOKEN (or run `hf auth login`)"
        )


def card_embedder(spec: str | None, *, precision: str = "auto"):
    """The embedder for the card's pairwise similarity, or None (with a warning) when it cannot load.

    The dataset is already written at this point: a missing model must not cost the user the build.
    Loading fails within seconds when the Hub is out of reach (``load_embedder`` asks it once).
    """
    from attrprompt_builder.filters.dedup.embedders import load_embedder

    try:
        return load_embedder(spec, precision=precision)
    except AttrPromptError as err:
        print(f"warning: the card leaves out pairwise similarity: {err}", file=sys.stderr)
        return None


def rewrite_card(folder: str | Path, *, embedder: str | None = None) -> Path:
    """``attrprompt card``: rewrite a generated folder's card, measured with the embedder its build used.

    ``embedder`` overrides the recorded one; ``"none"`` leaves out pairwise similarity. Unlike
    ``generate``, an embedder that cannot load is an error: a card that had pairwise similarity is
    never replaced by one without it unless asked.
    """
    from attrprompt_builder.card.render import write_card
    from attrprompt_builder.filters.dedup.embedders import load_embedder

    folder = Path(folder)
    layout.require_data_files(folder, field="folder")  # before the embedder loads: a wrong path fails at once
    layout.read_recipe(folder, field="folder")
    spec = embedder if embedder is not None else layout.recorded_embedder(folder, field="folder")
    model = None
    if spec != "none":
        try:
            model = load_embedder(spec, precision=layout.recorded_precision(folder))
        except MissingDependencyError as err:
            raise MissingDependencyError(f"{err}, or embedder='none' to leave out pairwise similarity") from err
    return write_card(folder, embedder=model)

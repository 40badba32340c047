"""Publish a generated dataset folder to the Hugging Face Hub as a dataset repo.

We upload the folder's files as they are, in one ``HfApi.create_commit``, rather than calling
``Dataset.push_to_hub``: push_to_hub re-encodes the rows and rewrites README.md from the metadata
alone (a new repo gets a YAML-only card, so our card body would be lost, or would need a second
commit that leaves a window with the wrong card), and it cannot carry recipe.yaml, generation.json
and the plots in the same commit. The parquet shards already hold the features in their schema
metadata (``ClassLabel`` names included) and the card already declares ``configs`` and
``dataset_info``, so plain ``datasets.load_dataset(repo_id)`` reads them back unchanged. One commit
also means a reader never sees new shards with an old card, or the reverse.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from pathlib import Path

import httpx2
import pyarrow.parquet as pq
import yaml
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    HfApi,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
)
from huggingface_hub.utils import validate_repo_id

from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.errors import (
    ConfigError,
    HubError,
    HubUnavailableError,
    HubUnreachableError,
    one_line,
)

__all__ = ["collect_publish_files", "publish"]

logger = logging.getLogger(__name__)

_SIDE_FILES = (layout.RECIPE_FILE, layout.GENERATION_FILE)


def collect_publish_files(folder: str | Path) -> list[str]:
    """Paths (relative, POSIX) that ``publish`` uploads from ``folder``; validates the folder first.

    Raises ``ConfigError`` (one line) when the shards or the card are missing, or when the card
    cannot work on the Hub (bad YAML, a ``configs`` pattern that matches no shard).
    """
    root = Path(folder)
    shards = [path.relative_to(root).as_posix() for path in layout.require_data_files(root, field="folder")]
    card = root / layout.CARD_FILE
    if not card.is_file():
        raise ConfigError(
            f"folder: {str(folder)!r} has no {layout.CARD_FILE} dataset card; run `attrprompt card {folder}` to write it"
        )
    _check_card(card, shards)
    side = [name for name in _SIDE_FILES if (root / name).is_file()]
    plots = [path.name for path in layout.plot_files(root)]
    return [*shards, layout.CARD_FILE, *side, *plots]


def publish(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
) -> str:
    """Upload ``folder`` to the dataset repo ``repo_id`` (created if missing) and return its URL.

    ``token`` defaults to HF_TOKEN / the saved login. ``private`` applies only when the repo is
    created here. ``revision`` is a branch, created from main when missing. Files under ``data/``
    on the Hub that this folder no longer has are deleted in the same commit, so ``data/train-*``
    never mixes rows from two builds; the repo's other files are left alone.
    """
    root = Path(folder)
    paths = collect_publish_files(root)
    _check_repo_id(repo_id)
    api = HfApi(token=token, library_name="attrprompt-builder")
    try:
        if "/" not in repo_id:
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision is not None and revision != "main":
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        remote = api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
        stale = [p for p in remote if p.startswith(f"{layout.DATA_DIR}/") and p not in paths]
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(root / p)) for p in paths
        ]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or _default_message(root, paths),
            repo_type="dataset",
            revision=revision,
        )
    except HfHubHTTPError as err:
        raise _hub_error(err, repo_id) from err
    except OfflineModeIsEnabled as err:
        raise ConfigError("HF_HUB_OFFLINE=1 forbids publishing; unset HF_HUB_OFFLINE to reach the Hub") from err
    except (httpx2.ConnectError, httpx2.TimeoutException) as err:
        raise HubUnreachableError(
            f"cannot reach the Hub at {api.endpoint} ({type(err).__name__}); check the network or HF_ENDPOINT"
        ) from err
    except httpx2.TransportError as err:
        raise HubUnavailableError(
            f"the connection to the Hub at {api.endpoint} broke while publishing {repo_id!r} ({type(err).__name__}); "
            "publish again (a commit is all or nothing)"
        ) from err
    except RuntimeError as err:  # huggingface_hub's "Error while uploading 'x' to the Hub.", the cause chained
        raise _upload_error(err, repo_id) from err
    logger.info("published %d files (%d stale data files removed) to %s at %s", len(paths), len(stale), url, info.oid)
    return str(url)


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(
            f"repo_id={repo_id!r} is not a Hub repo id; use 'namespace/name' with letters, digits, '-', '_' or '.'"
        ) from err


def _check_card(readme: Path, shards: list[str]) -> None:
    try:
        card = DatasetCard(readme.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(
            f"{readme}: the YAML header does not parse ({one_line(err)}); rerun `attrprompt card {readme.parent}`"
        ) from err
    # A configs pattern that matches nothing makes load_dataset fail on the Hub, after the upload.
    for config in card.data.to_dict().get("configs") or []:
        for pattern in _data_file_patterns(config.get("data_files")):
            if not any(fnmatch.fnmatchcase(shard, pattern) for shard in shards):
                raise ConfigError(
                    f"{readme}: configs[{config.get('config_name', '?')!r}] data_files={pattern!r} matches none of "
                    f"{shards}; rerun `attrprompt card {readme.parent}`"
                )


def _data_file_patterns(data_files: object) -> list[str]:
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, list):
        return [p for item in data_files for p in _data_file_patterns(item)]
    if isinstance(data_files, dict):
        return _data_file_patterns(data_files.get("path"))
    return []


def _default_message(root: Path, paths: list[str]) -> str:
    shards = [p for p in paths if p.endswith(".parquet")]
    rows = sum(pq.read_metadata(root / p).num_rows for p in shards)
    return f"Publish attrprompt dataset ({rows} rows in {len(shards)} shard(s))"


def _upload_error(err: RuntimeError, repo_id: str) -> Exception:
    """A file upload that failed after huggingface_hub's retries, as one line naming the file."""
    named = re.search(r"uploading '(.+)' to the Hub", str(err))
    what = f"uploading {named.group(1)!r}" if named else "an upload"
    cause = err.__cause__
    again = "publish again (nothing is committed until every file is uploaded; uploaded files are skipped)"
    if isinstance(cause, HfHubHTTPError):
        hub = _hub_error(cause, repo_id)
        if isinstance(hub, ConfigError):
            return hub
        status = cause.response.status_code if cause.response is not None else None
        kind = HubUnavailableError if isinstance(hub, HubUnavailableError) else HubError
        return kind(f"{what} to {repo_id!r} failed: the Hub answered HTTP {status}; {again}", status=status)
    reason = type(cause).__name__ if isinstance(cause, (httpx2.TransportError, OSError)) else one_line(cause or err)
    return HubUnavailableError(f"{what} to {repo_id!r} failed ({reason}); {again}")


def _hub_error(err: HfHubHTTPError, repo_id: str) -> Exception:
    status = err.response.status_code if err.response is not None else None
    # The Hub's own message is multi-line and may repeat the URL; its first line is enough.
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    if status in (401, 403):
        return ConfigError(
            f"the Hub refused to write dataset {repo_id!r} (HTTP {status}); pass --token or set HF_TOKEN "
            "to a token with write access to that namespace"
        )
    if status is not None and (status == 429 or status >= 500):
        return HubUnavailableError(
            f"the Hub answered HTTP {status} while publishing {repo_id!r} ({first}); try again later", status=status
        )
    return HubError(f"the Hub answered HTTP {status} while publishing {repo_id!r}: {first}", status=status)

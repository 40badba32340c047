"""A Hugging Face Hub look-alike on loopback, for tests that publish a dataset and load it back.

It serves only the routes that huggingface_hub 2.4 (``HfApi``, ``hf_hub_download``,
``HfFileSystem``) and datasets 5.2 (``load_dataset``) call for a dataset repo, found by reading
their sources and by logging a publish + load round-trip (``LoopbackHub.unhandled`` keeps whatever
no route matched). Binary files go through the LFS batch protocol, as on the real Hub once Xet is
off (``HF_HUB_DISABLE_XET=1``); text files are committed inline ("regular" mode). Repos live in
memory: each commit is a full snapshot ``{path: StoredFile}`` under a fresh sha.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["HUB_USER", "LoopbackHub", "StoredFile", "StoredRepo"]

HUB_USER = "loopback-user"
# The real Hub stores these through LFS (its default .gitattributes), and so do we, so the
# client's LFS upload path is exercised and not only the inline one.
_LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".bin", ".safetensors")
_LFS_MIN_SIZE = 10 * 1024 * 1024
_GITATTRIBUTES = b"".join(b"*%s filter=lfs diff=lfs merge=lfs -text\n" % s.encode() for s in _LFS_SUFFIXES)

_Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def git_oid(self) -> str:
        blob = self.pointer if self.lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest()

    @property
    def etag(self) -> str:
        # What the client compares with its local oid: sha256 for LFS files, git sha1 otherwise.
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class StoredRepo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, dict[str, StoredFile]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        return self.branches.get(revision) or (revision if revision in self.snapshots else None)

    def files(self, revision: str = "main") -> dict[str, StoredFile]:
        sha = self.resolve(revision)
        return {} if sha is None else self.snapshots[sha]

    def commit(self, branch: str, files: dict[str, StoredFile], title: str) -> str:
        listing = sorted((path, f.git_oid) for path, f in files.items())
        seed = [self.branches.get(branch, ""), listing, title, len(self.snapshots)]
        sha = hashlib.sha1(json.dumps(seed).encode()).hexdigest()
        self.snapshots[sha], self.titles[sha], self.branches[branch] = files, title, sha
        self.dates[sha] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return sha


class _HubError(Exception):
    """An error answer, with the X-Error-Code that huggingface_hub maps to its exception classes."""

    def __init__(self, status: int, message: str, *, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.commit = status, code, commit


class LoopbackHub:
    """Threaded HTTP server on 127.0.0.1:<free port>; use as a context manager.

    ``tokens`` maps a bearer token to ``"read"`` or ``"write"``; ``None`` takes any token as a
    write token. A write without a known token gets the Hub's 401, with a read token its 403.
    """

    def __init__(self, *, tokens: Mapping[str, str] | None = None) -> None:
        self.tokens = tokens
        self.repos: dict[str, StoredRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.create_requests: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.unhandled: list[str] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LoopbackHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def role(self, authorization: str | None) -> str | None:
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token:
            return None
        return "write" if self.tokens is None else self.tokens.get(token)


@dataclass
class _Call:
    """One request as the route functions see it (run under ``hub.lock``)."""

    hub: LoopbackHub
    headers: Mapping[str, str]
    groups: dict[str, str]
    query: dict[str, str]
    body: bytes

    @property
    def role(self) -> str | None:
        return self.hub.role(self.headers.get("Authorization"))

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def flag(self, value: str | None) -> bool:
        return (value or "").lower() == "true"

    def require_write(self) -> None:
        if self.role is None:
            raise _HubError(401, "Invalid credentials in Authorization header")
        if self.role != "write":
            raise _HubError(403, "You don't have the rights to write to this repository (read-only token)")

    def repo(self) -> StoredRepo:
        stored = self.hub.repos.get(self.groups["repo"])
        # The Hub answers for a private repo seen anonymously exactly as for a missing one.
        if stored is None or (stored.private and self.role is None):
            raise _HubError(404, f"Repository {self.groups['repo']} not found", code="RepoNotFound")
        return stored

    def sha(self, repo: StoredRepo, revision: str | None = None) -> str:
        revision = revision or self.groups.get("rev") or "main"
        sha = repo.resolve(revision)
        if sha is None:
            raise _HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return sha


def _json(obj: Any, status: int = 200) -> _Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def _entries(repo: StoredRepo, sha: str, wanted: Callable[[str], bool], expand: bool) -> Iterator[dict[str, Any]]:
    """Tree / paths-info entries (folders first, like the Hub) for the paths ``wanted`` accepts."""
    files = repo.snapshots[sha]
    last = {"lastCommit": {"id": sha, "title": repo.titles[sha], "date": repo.dates[sha]}} if expand else {}
    for path in sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}):
        if wanted(path):
            yield {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path, **last}
    for path, stored in sorted(files.items()):
        if wanted(path):
            entry: dict[str, Any] = {"type": "file", "oid": stored.git_oid, "size": len(stored.data), "path": path}
            if stored.lfs:
                entry["lfs"] = {"oid": stored.sha256, "size": len(stored.data), "pointerSize": len(stored.pointer)}
            yield {**entry, **last}


def _whoami(call: _Call) -> _Reply:
    if call.role is None:
        raise _HubError(401, "Invalid credentials in Authorization header")
    token = {"displayName": "loopback", "role": call.role}
    return _json({"type": "user", "name": HUB_USER, "auth": {"type": "access_token", "accessToken": token}})


def _agent_harnesses(call: _Call) -> _Reply:
    # huggingface_hub fetches this registry to tag its User-Agent; an empty one detects no agent.
    return _json({"standardEnvVars": [], "harnesses": {}})


def _create_repo(call: _Call) -> _Reply:
    call.require_write()
    payload = call.json()
    call.hub.create_requests.append(payload)
    if payload.get("type") != "dataset":
        raise _HubError(400, f"loopback hub only hosts dataset repos, got type={payload.get('type')!r}")
    repo_id = f"{payload.get('organization') or HUB_USER}/{payload['name']}"
    url = f"{call.hub.url}/datasets/{repo_id}"
    if repo_id in call.hub.repos:
        return _json({"error": "You already created this dataset repo", "url": url}, 409)
    repo = call.hub.repos[repo_id] = StoredRepo(repo_id, private=payload.get("visibility") == "private")
    # Like the Hub, a new repo starts with one commit holding .gitattributes.
    repo.commit("main", {".gitattributes": StoredFile(_GITATTRIBUTES, lfs=False)}, "initial commit")
    return _json({"url": url, "name": repo_id, "id": repo_id})


def _validate_yaml(call: _Call) -> _Reply:
    content = call.json()["content"]
    try:
        yaml.safe_load(content.split("---", 2)[1] if content.startswith("---") else "")
    except yaml.YAMLError as err:
        return _json({"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []}, 400)
    return _json({"errors": [], "warnings": []})


def _info(call: _Call) -> _Reply:
    repo = call.repo()
    sha = call.sha(repo)
    readme = repo.snapshots[sha].get("README.md")
    card = {}
    if readme is not None and readme.data.startswith(b"---"):
        card = yaml.safe_load(readme.data.decode().split("---", 2)[1]) or {}
    return _json(
        {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": sha,
            "lastModified": repo.dates[sha],
            "createdAt": repo.dates[sha],
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": card.get("tags", []),
            "cardData": card,
            "siblings": [{"rfilename": path} for path in sorted(repo.snapshots[sha])],
        }
    )


def _preupload(call: _Call) -> _Reply:
    call.require_write()
    current = call.repo().files(call.groups["rev"])
    answers = []
    for item in call.json()["files"]:
        sample = base64.b64decode(item["sample"])
        lfs = item["path"].lower().endswith(_LFS_SUFFIXES) or b"\0" in sample or item["size"] >= _LFS_MIN_SIZE
        existing = current.get(item["path"])
        oid = None if existing is None else existing.etag  # lets the client skip unchanged files
        mode = "lfs" if lfs else "regular"
        answers.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
    return _json({"files": answers})


def _lfs_batch(call: _Call) -> _Reply:
    call.require_write()
    call.repo()
    objects = []
    for obj in call.json()["objects"]:
        answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
        if obj["oid"] not in call.hub.lfs_objects:  # known content needs no second upload
            answer["actions"] = {"upload": {"href": f"{call.hub.url}/lfs-upload/{obj['oid']}", "header": {}}}
        objects.append(answer)
    return _json({"transfer": "basic", "objects": objects})


def _lfs_upload(call: _Call) -> _Reply:
    if hashlib.sha256(call.body).hexdigest() != call.groups["oid"]:
        raise _HubError(400, "uploaded content does not match its sha256 oid")
    call.hub.lfs_objects[call.groups["oid"]] = call.body
    return 200, {}, b""


def _commit(call: _Call) -> _Reply:
    call.require_write()
    repo, branch = call.repo(), call.groups["rev"]
    if branch not in repo.branches:
        raise _HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
    files, title = dict(repo.files(branch)), ""
    for line in call.body.splitlines():
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            title, parent = value["summary"], value.get("parentCommit")
            if parent and not repo.branches[branch].startswith(parent):
                raise _HubError(412, f"parent commit {parent} is not the head of {branch}")
        elif key == "file":
            files[value["path"]] = StoredFile(base64.b64decode(value["content"]), lfs=False)
        elif key == "lfsFile":
            if value["oid"] not in call.hub.lfs_objects:
                raise _HubError(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
            files[value["path"]] = StoredFile(call.hub.lfs_objects[value["oid"]], lfs=True)
        elif key == "deletedFile":
            files.pop(value["path"], None)
        elif key == "deletedFolder":
            prefix = value["path"].rstrip("/") + "/"
            files = {p: f for p, f in files.items() if not p.startswith(prefix)}
        else:
            raise _HubError(400, f"loopback hub does not understand commit line key {key!r}")
    sha = repo.commit(branch, files, title)
    url = f"{call.hub.url}/datasets/{repo.repo_id}/commit/{sha}"
    return _json({"commitUrl": url, "commitOid": sha, "pullRequestUrl": None})


def _tree(call: _Call) -> _Reply:
    repo = call.repo()
    sha = call.sha(repo)
    base = call.groups["path"].strip("/")
    prefix = f"{base}/" if base else ""
    if base and not any(p.startswith(prefix) for p in repo.snapshots[sha]):
        raise _HubError(404, f"{base} does not exist on {call.groups['rev']}", code="EntryNotFound", commit=sha)
    recursive = call.flag(call.query.get("recursive"))

    def wanted(path: str) -> bool:
        return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

    return _json(list(_entries(repo, sha, wanted, call.flag(call.query.get("expand")))))


def _paths_info(call: _Call) -> _Reply:
    repo = call.repo()
    form = parse_qs(call.body.decode())  # HfApi posts these as a form, not JSON
    paths = {p.strip("/") for p in form.get("paths", [])}
    expand = call.flag(form.get("expand", [""])[-1])
    return _json(list(_entries(repo, call.sha(repo), paths.__contains__, expand)))


def _branch(call: _Call) -> _Reply:
    call.require_write()
    repo = call.repo()
    if call.groups["branch"] in repo.branches:
        raise _HubError(409, f"Reference refs/heads/{call.groups['branch']} already exists")
    repo.branches[call.groups["branch"]] = call.sha(repo, call.json().get("startingPoint"))
    return _json({})


def _resolve(call: _Call) -> _Reply:
    repo = call.repo()
    sha = call.sha(repo)
    stored = repo.snapshots[sha].get(call.groups["path"])
    if stored is None:
        raise _HubError(404, f"Entry not found: {call.groups['path']}", code="EntryNotFound", commit=sha)
    headers = {"Content-Type": "application/octet-stream", "ETag": f'"{stored.etag}"', "X-Repo-Commit": sha}
    headers["Accept-Ranges"] = "bytes"
    if stored.lfs:
        headers.update({"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(stored.data))})
    data = stored.data
    # HfFileSystem reads parquet footers and resumes streams with Range requests.
    wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", call.headers.get("Range") or "")
    if wanted is None:
        return 200, {**headers, "Content-Length": str(len(data))}, data
    start = int(wanted[1] or 0)
    end = min(int(wanted[2]) if wanted[2] else len(data) - 1, len(data) - 1)
    if start >= len(data):
        return 416, {**headers, "Content-Range": f"bytes */{len(data)}"}, b""
    part = data[start : end + 1]
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return 206, {**headers, "Content-Length": str(len(part))}, part


_REPO = r"(?P<repo>[^/]+/[^/]+?)"
_API = rf"/api/datasets/{_REPO}"
_ROUTES: list[tuple[tuple[str, ...], re.Pattern[str], Callable[[_Call], _Reply]]] = [
    (("GET",), re.compile(r"/api/whoami-v2"), _whoami),
    (("GET",), re.compile(r"/api/agent-harnesses"), _agent_harnesses),
    (("POST",), re.compile(r"/api/repos/create"), _create_repo),
    (("POST",), re.compile(r"/api/validate-yaml"), _validate_yaml),
    (("GET",), re.compile(rf"{_API}(?:/revision/(?P<rev>[^/]+))?"), _info),
    (("POST",), re.compile(rf"{_API}/preupload/(?P<rev>[^/]+)"), _preupload),
    (("POST",), re.compile(rf"/datasets/{_REPO}\.git/info/lfs/objects/batch"), _lfs_batch),
    (("PUT",), re.compile(r"/lfs-upload/(?P<oid>[0-9a-f]{64})"), _lfs_upload),
    (("POST",), re.compile(rf"{_API}/commit/(?P<rev>[^/]+)"), _commit),
    (("GET",), re.compile(rf"{_API}/tree/(?P<rev>[^/]+)(?P<path>/.*)?"), _tree),
    (("POST",), re.compile(rf"{_API}/paths-info/(?P<rev>[^/]+)"), _paths_info),
    (("POST",), re.compile(rf"{_API}/branch/(?P<branch>[^/]+)"), _branch),
    (("GET", "HEAD"), re.compile(rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), _resolve),
]


def _make_handler(hub: LoopbackHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx2 reuses connections like on the Hub

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests read hub.requests rather than stderr noise

        def do_GET(self) -> None:
            self._dispatch(self.command)

        do_HEAD = do_POST = do_PUT = do_GET

        def _body(self) -> bytes:
            if "Content-Length" not in self.headers and self.headers.get("Transfer-Encoding"):
                # httpx2 states the length of every body huggingface_hub sends; say so if that changes.
                raise _HubError(411, "loopback hub needs a Content-Length (no chunked bodies)")
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            try:
                body = self._body() if method in ("POST", "PUT") else b""
                status, headers, payload = self._route(method, parts.path, query, body)
            except _HubError as err:
                self.close_connection = err.status == 411  # its body is still unread on the socket
                status, payload = err.status, json.dumps({"error": str(err)}).encode()
                headers = {"Content-Type": "application/json", "X-Error-Message": str(err)}
                headers |= {"X-Error-Code": err.code} if err.code else {}
                headers |= {"X-Repo-Commit": err.commit} if err.commit else {}
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(payload)

        def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> _Reply:
            with hub.lock:
                hub.requests.append(f"{method} {path}")
                for methods, pattern, route in _ROUTES:
                    match = pattern.fullmatch(path)
                    if match and method in methods:
                        # Revisions and paths arrive percent-encoded ("refs%2Fpr%2F1"): match, then decode.
                        groups = {k: unquote(v or "") for k, v in match.groupdict().items()}
                        return route(_Call(hub, self.headers, groups, query, body))
                hub.unhandled.append(f"{method} {self.path}")
            raise _HubError(404, f"loopback hub has no route for {method} {path}")

    return Handler

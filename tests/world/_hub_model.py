"""Records and pure helpers of the fake Hub: users, tokens, commits, hashes, file metadata.

Kept free of HTTP and locking so that the ids the fake hands out (git blob sha1, LFS sha256,
pointer sizes, parameter counts) can be reasoned about and unit-tested on their own; the wire
layer (`_hub_http`, `_hub_routes`) and the state (`_hub_state`) only combine them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "DEFAULT_GITATTRIBUTES",
    "Commit",
    "CommitFile",
    "HubError",
    "RepoType",
    "RequestRecord",
    "Snapshot",
    "Token",
    "TokenRole",
    "User",
    "file_entry",
    "git_blob_sha1",
    "hub_time",
    "is_lfs_path",
    "lfs_pointer",
    "safetensors_parameters",
]

RepoType = Literal["model", "dataset", "space"]
TokenRole = Literal["read", "write", "fineGrained"]

# What the real Hub writes as the first commit of every new model or dataset repo. Clients see
# `.gitattributes` in `list_repo_files`, and its `filter=lfs` patterns decide which files the Hub
# reports as LFS (siblings `lfs`, tree `lfs`, resolve `X-Linked-*`).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
        "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
        "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
        "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
        "*.zst", "*tfevents*",
    )
)  # fmt: skip

# Files above this size are LFS on the real Hub whatever `.gitattributes` says (it refuses
# larger regular blobs); the fake reports them the same way.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024


class HubError(Exception):
    """An error answer, shaped the way `huggingface_hub.utils.hf_raise_for_status` parses it.

    `code` goes to `X-Error-Code` (the header that selects the exception class client-side);
    `message` goes to both `X-Error-Message` and the JSON body's `error`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code or ''} {message}".strip())
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.body = dict(body or {})


@dataclass(frozen=True)
class User:
    """A Hub account; `orgs` are the organisations it belongs to (it may write to them)."""

    name: str
    id: str
    fullname: str
    orgs: tuple[str, ...] = ()
    email: str | None = None


@dataclass(frozen=True)
class Token:
    """An access token as the Hub describes it in `whoami-v2` (`auth.accessToken`).

    `scoped_write` lists the namespaces where a fine-grained token holds `repo.write`; read and
    write tokens ignore it (their role decides). `can_read_gated` mirrors the fine-grained
    "read access to public gated repos" switch.
    """

    value: str
    user: str
    role: TokenRole
    display_name: str
    scoped_write: tuple[str, ...] = ()
    can_read_gated: bool = True
    created_at: str = "2026-01-01T00:00:00.000Z"


@dataclass(frozen=True)
class CommitFile:
    """One file added or replaced by a commit (the bytes stay in the repo, not in the ledger)."""

    path: str
    size: int
    blob_id: str


@dataclass(frozen=True)
class Commit:
    """One ledger entry: what was committed where, by whom, when and through which door."""

    repo_id: str
    repo_type: RepoType
    revision: str
    oid: str
    parent: str | None
    summary: str
    files: tuple[CommitFile, ...]
    deleted: tuple[str, ...]
    user: str | None
    token_role: TokenRole | None
    time: datetime
    via: Literal["http", "python"]

    @property
    def paths(self) -> tuple[str, ...]:
        """Paths added or replaced, the usual thing a test asserts on."""
        return tuple(f.path for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """JSON form for `/_control/commits`."""
        data = asdict(self)
        data["time"] = hub_time(self.time)
        data["paths"] = list(self.paths)
        return data


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake answered; tests use these to see which endpoints a client hit."""

    method: str
    path: str
    query: str
    status: int
    user: str | None
    time: float

    def to_json(self) -> dict[str, Any]:
        """JSON form for `/_control/requests`."""
        return asdict(self)


@dataclass(frozen=True)
class Snapshot:
    """An immutable tree at one commit: path → bytes. Commits build new snapshots."""

    oid: str
    files: Mapping[str, bytes]
    parent: str | None
    summary: str
    date: datetime = field(default_factory=lambda: datetime.now(UTC))


def hub_time(value: datetime) -> str:
    """Format a datetime the way the Hub does (`2026-01-01T00:00:00.000Z`)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: what the Hub calls `blobId`/`oid` and sends as `ETag`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file the Hub stores in git in place of an LFS file's content."""
    digest = hashlib.sha256(data).hexdigest()
    spec = "version https://git-lfs.github.com/spec/v1"
    return f"{spec}\noid sha256:{digest}\nsize {len(data)}\n".encode()


def _lfs_patterns(gitattributes: bytes | None) -> list[str]:
    if gitattributes is None:
        return []
    patterns = []
    for line in gitattributes.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def is_lfs_path(path: str, size: int, gitattributes: bytes | None) -> bool:
    """Whether the real Hub would keep this file in LFS (pattern match or size over 10 MB).

    Patterns without `/` match the basename, as in git; others match the whole path.
    """
    if size >= LFS_SIZE_THRESHOLD:
        return True
    base = path.rsplit("/", 1)[-1]
    for pattern in _lfs_patterns(gitattributes):
        target = path if "/" in pattern else base
        if fnmatch.fnmatchcase(target, pattern):
            return True
    return False


def file_entry(path: str, data: bytes, gitattributes: bytes | None) -> dict[str, Any]:
    """Tree/paths-info entry of a file (`type`, `oid`, `size`, `path`, `lfs`); never `xetHash`."""
    entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data)}
    if is_lfs_path(path, len(data), gitattributes):
        pointer = lfs_pointer(data)
        entry["oid"] = git_blob_sha1(pointer)
        entry["lfs"] = {
            "oid": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pointerSize": len(pointer),
        }
    else:
        entry["oid"] = git_blob_sha1(data)
    return entry


def safetensors_parameters(data: bytes) -> dict[str, int]:
    """Parameter count per dtype read from a safetensors header (what the Hub reports).

    Only the header is parsed: 8-byte little-endian length, then JSON mapping tensor names to
    `{"dtype", "shape", "data_offsets"}`. Malformed files count as empty rather than failing
    `model_info`, since the real Hub just omits the field for files it cannot parse.
    """
    if len(data) < 8:
        return {}
    (length,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + length])
    except ValueError:
        return {}
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        numel = 1
        for dim in info.get("shape", []):
            numel *= int(dim)
        counts[info["dtype"]] = counts.get(info["dtype"], 0) + numel
    return counts

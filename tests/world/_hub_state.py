"""Thread-safe state of the fake Hub: accounts, tokens, repos with history, and the ledger.

Every access rule lives here (who may see, download from, or write to which repo) so that the
HTTP routes stay a thin translation layer, and so that the rules match the Hub's (docs/hub.md,
"Errors") in one place: private and missing repos look identical
(`RepoNotFound`, 401 anonymous / 404 authenticated), gated repos refuse files only, and writes
need a write-capable token on the repo's namespace.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from tests.world._hub_model import (
    DEFAULT_GITATTRIBUTES,
    Commit,
    CommitFile,
    HubError,
    RepoType,
    RequestRecord,
    Snapshot,
    Token,
    User,
    git_blob_sha1,
)
from tests.world._random_faults import RandomFaults

__all__ = ["INVALID_CREDENTIALS", "Fault", "HubState", "Repo"]

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
Gated = Literal[False, "auto", "manual"]


@dataclass
class Repo:
    """A repository: branches pointing into a history of immutable snapshots."""

    repo_type: RepoType
    repo_id: str
    private: bool
    gated: Gated
    created_at: datetime
    branches: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    granted: set[str] = field(default_factory=set)
    disabled: bool = False

    @property
    def namespace(self) -> str:
        """Owner part of the id (`org` in `org/name`)."""
        return self.repo_id.split("/", 1)[0]

    @property
    def head(self) -> Snapshot:
        """Snapshot `main` points at."""
        return self.snapshots[self.branches["main"]]

    def resolve(self, revision: str) -> Snapshot:
        """Branch name or full commit sha → snapshot, else the Hub's `RevisionNotFound`."""
        oid = self.branches.get(revision)
        if oid is None and _SHA_RE.match(revision) and revision in self.snapshots:
            oid = revision
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return self.snapshots[oid]


FaultAction = Literal["status", "delay", "drop"]


@dataclass
class Fault:
    """An injected failure: the next `times` requests matching method and path prefix get it.

    `action` says what they get: `status` an error answer (`status`, `message`, `code`);
    `delay` the normal answer after `delay_s` seconds (longer than the client's timeout, it
    is a timeout); `drop` the connection closed with no answer at all (a reset mid-request).
    """

    method: str
    path_prefix: str
    status: int
    message: str
    code: str | None
    times: int
    action: FaultAction = "status"
    delay_s: float = 0.0


class HubState:
    """All mutable data of one fake Hub, guarded by a single re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.endpoint = "http://127.0.0.1:0"
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.repos: dict[tuple[RepoType, str], Repo] = {}
        self.ledger: list[Commit] = []
        self.request_log: deque[RequestRecord] = deque(maxlen=5000)
        self.faults: list[Fault] = []
        self.random_faults: RandomFaults | None = None  # seeded faults on every API request
        # Knobs tests may flip: tree page length, and whether preupload answers `lfs` for
        # LFS-pattern files (exercising the LFS batch path) instead of `regular` for all.
        self.tree_page_size = 1000
        self.lfs_uploads = False
        # Whether `resolve` answers as the real Hub does for a small file: a 307 to the
        # cache route (off by default: docs/hub.md, "Transport rules").
        self.resolve_redirects = False
        self.lfs_blobs: dict[str, bytes] = {}
        self._counter = itertools.count(1)

    # -- accounts -------------------------------------------------------------------------

    def add_user(self, name: str, *, orgs: Iterable[str] = (), fullname: str | None = None) -> User:
        """Register an account; its id is a stable 24-hex string like the Hub's ObjectIds."""
        uid = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:24]
        user = User(
            name=name,
            id=uid,
            fullname=fullname or name.title(),
            orgs=tuple(orgs),
            email=f"{name}@example.com",
        )
        with self.lock:
            self.users[name] = user
        return user

    def add_token(self, token: Token) -> Token:
        """Register a token (its user must exist)."""
        with self.lock:
            if token.user not in self.users:
                raise KeyError(f"unknown user {token.user!r}")
            self.tokens[token.value] = token
        return token

    def authenticate(self, authorization: str | None) -> Token | None:
        """`Bearer <t>` → token; none → anonymous; unknown → the Hub's 401 (no error code)."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise HubError(401, INVALID_CREDENTIALS)
        return token

    def namespaces_of(self, token: Token) -> set[str]:
        """Namespaces the token's user owns or belongs to."""
        user = self.users[token.user]
        return {user.name, *user.orgs}

    def can_write_namespace(self, token: Token | None, namespace: str) -> bool:
        """Role `write` on own namespaces, or fine-grained `repo.write` scoped to it."""
        if token is None or namespace not in self.namespaces_of(token):
            return False
        if token.role == "write":
            return True
        return token.role == "fineGrained" and namespace in token.scoped_write

    # -- repos ----------------------------------------------------------------------------

    def create_repo(
        self,
        repo_type: RepoType,
        repo_id: str,
        *,
        private: bool = False,
        gated: Gated = False,
        files: Mapping[str, bytes] | None = None,
    ) -> Repo:
        """Make a repo with the Hub's initial `.gitattributes` commit (plus `files`, if given)."""
        namespace, _, name = repo_id.partition("/")
        if not name or not _NAME_RE.match(name) or not _NAME_RE.match(namespace):
            raise HubError(400, f"Invalid repo name: {repo_id}")
        with self.lock:
            key = (repo_type, repo_id)
            if key in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            now = datetime.now(UTC)
            repo = Repo(repo_type, repo_id, private, gated, created_at=now)
            initial = {".gitattributes": DEFAULT_GITATTRIBUTES.encode()}
            initial.update(files or {})
            snap = Snapshot(
                self._new_oid(repo_id, "initial commit"), initial, None, "initial commit", now
            )
            repo.snapshots[snap.oid] = snap
            repo.branches["main"] = snap.oid
            self.repos[key] = repo
        return repo

    def delete_repo(self, repo_type: RepoType, repo_id: str) -> None:
        """Forget a repo (used by `/api/repos/delete` and tests)."""
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise HubError(404, "Repository not found", code="RepoNotFound")

    def find_repo(self, repo_type: RepoType, repo_id: str) -> Repo | None:
        """The repo or None, without any access check."""
        with self.lock:
            return self.repos.get((repo_type, repo_id))

    def _can_see(self, token: Token | None, repo: Repo) -> bool:
        if not repo.private:
            return True
        return token is not None and repo.namespace in self.namespaces_of(token)

    def visible_repo(self, token: Token | None, repo_type: RepoType, repo_id: str) -> Repo:
        """Repo the caller may see; missing and hidden-private look the same, as on the Hub."""
        repo = self.find_repo(repo_type, repo_id)
        if repo is None or not self._can_see(token, repo):
            raise HubError(
                401 if token is None else 404,
                "Repository not found",
                code="RepoNotFound",
                headers={"WWW-Authenticate": 'Bearer realm="Authentication required"'}
                if token is None
                else None,
            )
        if repo.disabled:
            raise HubError(403, "Access to this resource is disabled.")
        return repo

    def check_file_access(self, token: Token | None, repo: Repo) -> None:
        """Gate file routes: anonymous 401 / no access 403, both `X-Error-Code: GatedRepo`."""
        if not repo.gated or (token is not None and repo.namespace in self.namespaces_of(token)):
            return
        label = f"{repo.repo_type} {repo.repo_id}"
        if token is None:
            raise HubError(
                401,
                f"Access to {label} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                code="GatedRepo",
                headers={"WWW-Authenticate": 'Bearer realm="Authentication required"'},
            )
        if token.role == "fineGrained" and not token.can_read_gated:
            raise HubError(
                403,
                "Please enable access to public gated repositories in your fine-grained token "
                "settings to view this repository.",
                code="GatedRepo",
            )
        if token.user not in repo.granted:
            raise HubError(
                403,
                f"Access to {label} is restricted and you are not in the authorized list. "
                f"Visit https://huggingface.co/{repo.repo_id} to ask for access.",
                code="GatedRepo",
            )

    def check_write(self, token: Token | None, repo: Repo) -> None:
        """Writes (preupload, commit, LFS batch) need write rights on the repo's namespace."""
        if token is None:
            raise HubError(401, "You must be authenticated to access this resource")
        if not self.can_write_namespace(token, repo.namespace):
            raise HubError(
                403, "Forbidden: pass `create_pr=1` as a query parameter to create a Pull Request"
            )

    def grant(self, repo_type: RepoType, repo_id: str, user: str) -> None:
        """Put a user on a gated repo's allow-list."""
        with self.lock:
            repo = self.repos[(repo_type, repo_id)]
            repo.granted.add(user)

    # -- commits --------------------------------------------------------------------------

    def _new_oid(self, repo_id: str, summary: str) -> str:
        seed = f"{repo_id}\0{summary}\0{time.time_ns()}\0{next(self._counter)}"
        return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()

    def commit(
        self,
        repo: Repo,
        revision: str,
        *,
        additions: Mapping[str, bytes],
        deletions: Iterable[str] = (),
        summary: str,
        token: Token | None,
        via: Literal["http", "python"],
        parent_commit: str | None = None,
    ) -> Commit:
        """Apply a commit on a branch and append it to the ledger.

        Deleting a missing path is the Hub's 404 `EntryNotFound`; a folder deletion is a path
        ending in `/`. A stale `parent_commit` is the Hub's 412.
        """
        with self.lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
            base = repo.snapshots[repo.branches[revision]]
            if parent_commit is not None and parent_commit != base.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            deleted: list[str] = []
            for path in deletions:
                if path.endswith("/"):
                    doomed = [p for p in files if p.startswith(path)]
                else:
                    doomed = [path] if path in files else []
                if not doomed:
                    raise HubError(
                        404,
                        f"A file with this name doesn't exist: {path}",
                        code="EntryNotFound",
                    )
                for p in doomed:
                    del files[p]
                deleted.extend(doomed)
            files.update(additions)
            now = datetime.now(UTC)
            snap = Snapshot(self._new_oid(repo.repo_id, summary), files, base.oid, summary, now)
            repo.snapshots[snap.oid] = snap
            repo.branches[revision] = snap.oid
            record = Commit(
                repo_id=repo.repo_id,
                repo_type=repo.repo_type,
                revision=revision,
                oid=snap.oid,
                parent=base.oid,
                summary=summary,
                files=tuple(
                    CommitFile(path, len(data), git_blob_sha1(data))
                    for path, data in sorted(additions.items())
                ),
                deleted=tuple(deleted),
                user=token.user if token else None,
                token_role=token.role if token else None,
                time=now,
                via=via,
            )
            self.ledger.append(record)
            return record

    # -- observability and fault injection ------------------------------------------------

    def log_request(self, record: RequestRecord) -> None:
        """Remember an answered request (bounded)."""
        with self.lock:
            self.request_log.append(record)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Consume one matching injected fault, if any."""
        with self.lock:
            for fault in self.faults:
                if fault.method in ("*", method) and path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

"""A Hugging Face Hub emulator on 127.0.0.1 for tests, benches and manual runs.

Why a real HTTP server and not mocks: the clients under test (huggingface_hub, transformers,
datasets, TRL's push) are other people's code; only a loopback server lets them run unmodified,
and it sees every request they make, the Rust `hf_xet` client's included. The protocol facts it
plays are in docs/hub.md; the private modules `_hub_*` hold the pieces:

    _hub_model   records (User, Token, Commit, ...) and hash/metadata helpers
    _hub_state   thread-safe state and every access rule
    _hub_wire    request/response objects, path splitting
    _hub_routes_read / _hub_routes_write / _hub_control   the endpoints
    _hub_http    the threaded server and router

Usage::

    with FakeHub() as hub:
        HfApi(endpoint=hub.endpoint, token=hub.tokens.write).model_info(hub.models.chat)
        assert hub.commits() == []

By hand: `python -m tests.world.hub --port 0` prints `READY <port>`, then one JSON line
describing the world (see `FakeHub.world`), and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Unpack

from tests.world._hub_control import CONTROL_ROUTES, ControlHooks
from tests.world._hub_http import HubServer
from tests.world._hub_model import Commit, HubError, RepoType, RequestRecord, Token, TokenRole
from tests.world._hub_state import Fault, FaultAction, HubState
from tests.world._random_faults import FaultSettings, RandomFaults, injected
from tests.world._serve import serve_until_signalled
from tests.world.tiny import TinyArtifacts, read_tree, tiny_artifacts

__all__ = [
    "CONTROL_ROUTES",
    "Commit",
    "FakeHub",
    "HubDatasets",
    "HubError",
    "HubModels",
    "HubTokens",
    "RequestRecord",
]


@dataclass(frozen=True)
class HubTokens:
    """Token values for the test user (and one for a different user)."""

    write: str
    read: str
    fine_grained_no_write: str  # fineGrained, repo.read only on the user's namespaces
    fine_grained_write: str  # fineGrained with repo.write on the user's own namespace
    other_user: str  # write token of another account (owner of the private model)


@dataclass(frozen=True)
class HubModels:
    """Seeded model repo ids."""

    chat: str  # public, ChatML template in tokenizer_config.json
    chat_jinja: str  # public, template in chat_template.jinja
    no_template: str  # public, no chat template
    gated_denied: str  # gated "manual"; the test user is not on the list
    gated_granted: str  # gated "auto"; the test user was granted access
    private_other: str  # private repo of another account: invisible to the test user


@dataclass(frozen=True)
class HubDatasets:
    """Seeded dataset repo ids."""

    sft: str  # parquet shard, `messages`
    grpo: str  # train.jsonl, `problem` / `solution`


USER = "thinnka-tester"
ORG = "thinnka-org"
OTHER_USER = "someone-else"
MODELS = HubModels(
    chat="tiny-models/qwen2-chat",
    chat_jinja="tiny-models/qwen2-chat-jinja",
    no_template="tiny-models/qwen2-base",
    gated_denied="gated-labs/qwen2-gated-manual",
    gated_granted="gated-labs/qwen2-gated-auto",
    private_other=f"{OTHER_USER}/qwen2-private",
)
DATASETS = HubDatasets(sft="tiny-datasets/sft-arith", grpo="tiny-datasets/grpo-arith")


class FakeHub:
    """Emulated Hub seeded with tiny models, data sets, a user and tokens of every kind.

    Start is cheap (< 0.5 s) once the tiny artefacts are cached; the first start of a given
    builder version builds them (~5 s). Pass `artifacts` to reuse an already loaded set.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, artifacts: TinyArtifacts | None = None
    ) -> None:
        self.state = HubState()
        self._artifacts = artifacts
        self._server = HubServer(self.state, ControlHooks(self.world, self.reset), host, port)
        self.endpoint = f"http://{host}:{self._server.port}"
        self.control = f"{self.endpoint}/_control"
        self.state.endpoint = self.endpoint
        self.user = USER
        self.org = ORG
        self.models = MODELS
        self.datasets = DATASETS
        self.state.add_user(USER, orgs=[ORG], fullname="Thinnka Tester")
        self.state.add_user(OTHER_USER, fullname="Someone Else")
        self.tokens = HubTokens(
            write=self.add_token(USER, "write", name="write"),
            read=self.add_token(USER, "read", name="read"),
            fine_grained_no_write=self.add_token(USER, "fineGrained", name="fg-no-write"),
            fine_grained_write=self.add_token(
                USER, "fineGrained", name="fg-write", scoped_write=[USER]
            ),
            other_user=self.add_token(OTHER_USER, "write", name="other"),
        )
        self._started = False
        self._trees: dict[str, dict[str, bytes]] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def artifacts(self) -> TinyArtifacts:
        """The tiny models and data sets behind the seeded repos (built or read from cache)."""
        if self._artifacts is None:
            self._artifacts = tiny_artifacts()
        return self._artifacts

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._server.port

    def start(self) -> FakeHub:
        """Seed the repos and start serving in a background thread."""
        if not self._started:
            self.reset()
            self._server.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._started:
            self._server.stop()
            self._started = False
        else:
            self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _seed_trees(self) -> dict[str, dict[str, bytes]]:
        """Artefact folders read once (a reset then copies dicts, no disk access)."""
        if self._trees is None:
            art = self.artifacts
            self._trees = {
                name: read_tree(getattr(art, name))
                for name in ("chat", "chat_jinja", "no_template", "sft", "grpo")
            }
        return self._trees

    def reset(self) -> None:
        """Back to the seeded world: repos re-seeded; ledger, log, faults and knobs cleared.

        Users and tokens (including ones minted by tests) are kept.
        """
        trees = self._seed_trees()
        state = self.state
        with state.lock:
            state.repos.clear()
            state.ledger.clear()
            state.request_log.clear()
            state.faults.clear()
            state.random_faults = None
            state.lfs_blobs.clear()
            state.tree_page_size = 1000
            state.lfs_uploads = False
            state.resolve_redirects = False
            state.create_repo("model", MODELS.chat, files=trees["chat"])
            state.create_repo("model", MODELS.chat_jinja, files=trees["chat_jinja"])
            state.create_repo("model", MODELS.no_template, files=trees["no_template"])
            state.create_repo("model", MODELS.gated_denied, gated="manual", files=trees["chat"])
            state.create_repo("model", MODELS.gated_granted, gated="auto", files=trees["chat"])
            state.grant("model", MODELS.gated_granted, USER)
            state.create_repo("model", MODELS.private_other, private=True, files=trees["chat"])
            state.create_repo("dataset", DATASETS.sft, files=trees["sft"])
            state.create_repo("dataset", DATASETS.grpo, files=trees["grpo"])

    # -- inspection -----------------------------------------------------------------------

    def world(self) -> dict[str, Any]:
        """What `python -m tests.world.hub` prints and `/_control/world` returns."""
        return {
            "endpoint": self.endpoint,
            "control": self.control,
            "user": self.user,
            "org": self.org,
            "tokens": asdict(self.tokens),
            "models": asdict(self.models),
            "datasets": asdict(self.datasets),
            "num_parameters": self.artifacts.num_parameters,
        }

    def commits(
        self, repo_id: str | None = None, *, repo_type: RepoType | None = None
    ) -> list[Commit]:
        """Ledger entries (oldest first), optionally for one repo; seeding is not recorded."""
        with self.state.lock:
            return [
                c
                for c in self.state.ledger
                if (repo_id is None or c.repo_id == repo_id)
                and (repo_type is None or c.repo_type == repo_type)
            ]

    def requests(self) -> list[RequestRecord]:
        """Requests answered so far (control routes excluded)."""
        with self.state.lock:
            return list(self.state.request_log)

    def clear_requests(self) -> None:
        """Forget the request log (to look at one client call in isolation)."""
        with self.state.lock:
            self.state.request_log.clear()

    def internal_errors(self) -> list[str]:
        """Tracebacks of bugs in the fake itself (answered as 501); should stay empty."""
        return list(self._server.errors)

    def files(
        self, repo_id: str, *, repo_type: RepoType = "model", revision: str = "main"
    ) -> dict[str, bytes]:
        """Content of a repo at a revision, path → bytes."""
        repo = self.state.find_repo(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r}")
        return dict(repo.resolve(revision).files)

    # -- mutation -------------------------------------------------------------------------

    def add_token(
        self,
        user: str,
        role: TokenRole,
        *,
        name: str | None = None,
        scoped_write: Iterable[str] = (),
        can_read_gated: bool = True,
    ) -> str:
        """Mint a token (`hf_…`) for an existing user and return its value."""
        value = f"hf_fake{role.lower()}{secrets.token_hex(12)}"
        self.state.add_token(
            Token(value, user, role, name or f"{role}-token", tuple(scoped_write), can_read_gated)
        )
        return value

    def add_user(self, name: str, *, orgs: Iterable[str] = ()) -> None:
        """Register another account (mint its tokens with `add_token`)."""
        self.state.add_user(name, orgs=orgs)

    def add_repo(
        self,
        repo_id: str,
        *,
        repo_type: RepoType = "model",
        files: Mapping[str, bytes | str] | Path | None = None,
        private: bool = False,
        gated: Literal[False, "auto", "manual"] = False,
        granted: Iterable[str] = (),
        disabled: bool = False,
    ) -> str:
        """Create a repo directly (no ledger entry) and return its head commit sha.

        `disabled=True` makes every route answer the Hub's 403 "Access to this resource is
        disabled." (huggingface_hub's `DisabledRepoError`).
        """
        repo = self.state.create_repo(
            repo_type, repo_id, private=private, gated=gated, files=_as_files(files)
        )
        repo.disabled = disabled
        for user in granted:
            self.state.grant(repo_type, repo_id, user)
        return repo.head.oid

    def upload(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str] | Path,
        *,
        repo_type: RepoType = "model",
        delete: Iterable[str] = (),
        summary: str = "Upload via FakeHub.upload",
        revision: str = "main",
    ) -> Commit:
        """Commit files to an existing repo from Python (recorded with `via="python"`)."""
        repo = self.state.find_repo(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r}")
        return self.state.commit(
            repo,
            revision,
            additions=_as_files(files),
            deletions=delete,
            summary=summary,
            token=None,
            via="python",
        )

    def grant(self, repo_id: str, user: str, *, repo_type: RepoType = "model") -> None:
        """Put `user` on a gated repo's allow-list."""
        self.state.grant(repo_type, repo_id, user)

    def inject_fault(
        self,
        path_prefix: str,
        status: int,
        *,
        method: str = "*",
        message: str = "Injected failure",
        code: str | None = None,
        times: int = 1,
        action: FaultAction = "status",
        delay_s: float = 0.0,
    ) -> None:
        """Make the next `times` matching requests fail (e.g. 429 on `/api/whoami-v2`).

        `action="delay"` answers normally after `delay_s` (a timeout for a client that waits
        less); `action="drop"` closes the connection without an answer.
        """
        with self.state.lock:
            self.state.faults.append(
                Fault(method.upper(), path_prefix, status, message, code, times, action, delay_s)
            )

    def random_faults(self, *, rate: float, seed: int, **settings: Unpack[FaultSettings]) -> None:
        """From now on a seeded fraction `rate` of requests (never `/_control`) fail: 429 with
        `Retry-After: retry_after`, 500, or a dropped connection; a share `lost_answers` of
        the 500s and drops come after the request was carried out. `agent`: only requests
        whose User-Agent contains it. See `tests/world/_random_faults.py`.
        """
        faults = RandomFaults(rate=rate, seed=seed, **settings)
        with self.state.lock:
            self.state.random_faults = faults

    def injected_faults(self) -> dict[str, int]:
        """What `random_faults` handed out since it was switched on, per kind (and `after`,
        `total`); all zero when it is off."""
        return injected(self.state.random_faults)

    def clear_faults(self) -> None:
        """No pending injected faults, and random faults off."""
        with self.state.lock:
            self.state.faults.clear()
            self.state.random_faults = None


def _as_files(files: Mapping[str, bytes | str] | Path | None) -> dict[str, bytes]:
    if files is None:
        return {}
    if isinstance(files, Path):
        return read_tree(files)
    return {p: d.encode() if isinstance(d, str) else d for p, d in files.items()}


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; `READY <port>` then the world JSON go to stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.world.hub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # a cold build may print; stdout is protocol
        hub = FakeHub(host=args.host, port=args.port)
        hub.start()
    return serve_until_signalled(hub, hub.world())


if __name__ == "__main__":
    raise SystemExit(main())

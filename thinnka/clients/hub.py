"""The Hugging Face Hub, through huggingface_hub, behind thinnka's records.

Every exception of huggingface_hub (and of httpx / httpx2 below it) is
translated here (rules in ``hub_errors``): a gated model the token may not read
and a missing model become ``PreflightError`` (with the model's access URL), a
refused token ``AuthError``, an unreachable Hub, a 429 or a 5xx
``TransientError``, which is retried a bounded number of times. Every request
has a timeout: huggingface_hub's shared HTTP client has none by default. The
token is always passed explicitly (``False`` when there is none), so a token
cached on this machine is never used by accident.

The reads before a run's pod exists (``model``, ``whoami``) are plain requests
(``hub_reads``), so ``HfApi`` and the download machinery are not imported on that
path; the calls after it (commits, ``json_at_head``) use them, imported when first used.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from thinnka import __version__
from thinnka.clients.hub_errors import translate_hub_error
from thinnka.clients.hub_reads import HubReads, parse_listing
from thinnka.errors import AuthError, NotFoundError, TransientError, translated

if TYPE_CHECKING:
    from huggingface_hub import HfApi

T = TypeVar("T")

__all__ = ["HubClient", "HubCommit", "HubModel", "TokenInfo"]


@dataclass(frozen=True)
class HubModel:
    """What thinnka needs to know about a model repo."""

    repo_id: str
    gated: str | bool
    private: bool
    files: tuple[tuple[str, int], ...]  # (file name, size in bytes)
    safetensors_total: int | None
    safetensors_parameters: dict[str, int] | None
    config: dict[str, Any] | None
    has_chat_template: bool
    system_role_supported: bool
    transformers_version: str | None
    model_type: str | None
    sha: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HubCommit:
    """One commit of a repo: enough to say what it is (a checkpoint, the repo's creation)."""

    commit_id: str
    created_at: dt.datetime
    title: str


@dataclass(frozen=True)
class TokenInfo:
    user: str
    role: str
    orgs: tuple[str, ...]
    can_write: frozenset[str]  # namespaces this token may create/push repos in

    def may_write(self, namespace: str) -> bool:
        return namespace in self.can_write or "*" in self.can_write


class HubClient:
    def __init__(
        self,
        *,
        endpoint: str | None,
        token: str | None,
        timeout: float = 30.0,
        attempts: int = 3,
        max_delay: float = 30.0,
        backoff_max: float = 4.0,
    ) -> None:
        self.endpoint = (endpoint or "https://huggingface.co").rstrip("/")
        self.timeout = timeout
        self._token: str | bool = token or False
        # The preflight's reads, without HfApi (hub_reads says why).
        self._reads = HubReads(self.endpoint, token or None, timeout)
        self._retrying = retry(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(attempts) | stop_after_delay(max_delay),
            wait=wait_random_exponential(multiplier=0.5, max=backoff_max),
            reraise=True,
        )

    @cached_property
    def _api(self) -> HfApi:
        """For the calls after the pod exists (commits, pushes): imported when first used."""
        from huggingface_hub import HfApi

        # "thinnka/<version>" in the User-Agent, as on the Runpod clients: the Hub (and the
        # emulator's fault injection) can tell the orchestrator's requests from a trainer's.
        return HfApi(
            endpoint=self.endpoint,
            token=self._token,
            library_name="thinnka",
            library_version=__version__,
        )

    def prepare_later_calls(self) -> None:
        """Import and build ``HfApi`` now (a tenth of a second of CPU), for a caller with time
        to spare: ``run`` does it while the pod boots, before the train step asks for commits."""
        _ = self._api

    # ------------------------------------------------------------ reads
    def model(self, repo_id: str) -> HubModel:
        """Model facts; refuses a model this token cannot read (gated or missing)."""
        return self._retried(lambda: self._model_once(repo_id))

    def _model_once(self, repo_id: str) -> HubModel:
        with _translate(repo_id, self.endpoint):
            listing = parse_listing(self._reads.model_info(repo_id))
        names = {name for name, _ in listing.files}
        # The files of the commit the listing describes, even if main moves meanwhile.
        revision = listing.sha or "main"
        # Metadata of gated repos is public: fetching config.json proves read access.
        # Both small files are fetched at once.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hub") as pool:
            asked = {
                name: pool.submit(self._json_file, repo_id, name, revision)
                for name in ("config.json", "tokenizer_config.json")
                if name in names
            }
        config = asked["config.json"].result() if "config.json" in asked else None
        tokenizer_config = (
            asked["tokenizer_config.json"].result() if "tokenizer_config.json" in asked else None
        )
        template = _template_text(tokenizer_config)
        if template is None and "chat_template.jinja" in names:
            template = self._text_file(repo_id, "chat_template.jinja", revision)
        return HubModel(
            repo_id=repo_id,
            gated=listing.gated,
            private=listing.private,
            files=listing.files,
            safetensors_total=listing.safetensors_total,
            safetensors_parameters=listing.safetensors_parameters,
            config=config,
            has_chat_template=template is not None,
            system_role_supported=template is None or "System role not supported" not in template,
            transformers_version=(config or {}).get("transformers_version"),
            model_type=(config or {}).get("model_type"),
            sha=listing.sha,
        )

    def whoami(self) -> TokenInfo:
        if not self._token:
            raise AuthError("No Hugging Face token: set HF_TOKEN.")

        def once() -> dict[str, Any]:
            with _translate(None, self.endpoint):
                return self._reads.whoami()

        return _token_info(self._retried(once))

    def last_commit_at(self, repo_id: str) -> dt.datetime | None:
        """When the newest commit of ``repo_id`` was made; None if the repo is absent."""
        latest = self.latest_commit(repo_id)
        return latest.created_at if latest is not None else None

    def latest_commit(self, repo_id: str) -> HubCommit | None:
        """The newest commit of ``repo_id`` (its time and title); None if the repo is absent."""
        return max(self.commits(repo_id), key=lambda c: c.created_at, default=None)

    def commits(self, repo_id: str) -> list[HubCommit]:
        """Every commit of ``repo_id``'s main branch, newest first; empty if it is absent."""

        def once() -> list[Any]:
            with _translate(repo_id, self.endpoint, preflight=False):
                _bound_session_timeout(self.timeout)
                return list(self._api.list_repo_commits(repo_id, token=self._token))

        try:
            commits = self._retried(once)
        except NotFoundError:
            return []
        found = [HubCommit(c.commit_id, c.created_at, c.title or "") for c in commits]
        return sorted(found, key=lambda c: c.created_at, reverse=True)

    def json_at_head(self, repo_id: str, filename: str) -> dict[str, Any] | None:
        """A small JSON file of ``repo_id``'s main branch, read afresh (not from the cache);
        None when the repo or the file is absent or it is no JSON object."""

        def once() -> str | None:
            from huggingface_hub import hf_hub_download

            # A private folder, not the shared cache: the file changes under one name, and
            # the cache is the user's.
            with tempfile.TemporaryDirectory(prefix="thinnka-hub-") as folder:
                try:
                    with _translate(repo_id, self.endpoint, preflight=False):
                        path = hf_hub_download(
                            repo_id,
                            filename,
                            token=self._token,
                            endpoint=self.endpoint,
                            local_dir=folder,
                            etag_timeout=self.timeout,
                            library_name="thinnka",
                            library_version=__version__,
                        )
                except NotFoundError:
                    return None
                with open(path, encoding="utf-8", errors="replace") as handle:
                    return handle.read()

        text = self._retried(once)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------ helpers
    def _retried(self, call: Callable[[], T]) -> T:
        return self._retrying(call)()

    def _json_file(self, repo_id: str, filename: str, revision: str) -> dict[str, Any] | None:
        with _translate(repo_id, self.endpoint):
            raw = self._reads.file(repo_id, filename, revision)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _text_file(self, repo_id: str, filename: str, revision: str) -> str:
        with _translate(repo_id, self.endpoint):
            raw = self._reads.file(repo_id, filename, revision)
        return raw.decode("utf-8", errors="replace")


def _template_text(tokenizer_config: dict[str, Any] | None) -> str | None:
    template = (tokenizer_config or {}).get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        texts = [t.get("template", "") for t in template if isinstance(t, dict)]
        return "\n".join(texts) or None
    return template or None


def _token_info(data: dict[str, Any]) -> TokenInfo:
    user = data.get("name") or ""
    orgs = tuple(org.get("name", "") for org in data.get("orgs") or [])
    token = (data.get("auth") or {}).get("accessToken") or {}
    role = token.get("role") or "unknown"
    if role in ("write", "admin"):
        can_write = frozenset({user, *orgs})
    elif role == "fineGrained":
        fine = token.get("fineGrained") or {}
        can_write = frozenset(
            (scope.get("entity") or {}).get("name", "")
            for scope in fine.get("scoped") or []
            if "repo.write" in (scope.get("permissions") or [])
        )
        if "repo.write" in (fine.get("global") or []):
            can_write = can_write | {user, *orgs}
    else:
        can_write = frozenset()
    return TokenInfo(user=user, role=role, orgs=orgs, can_write=can_write)


def _bound_session_timeout(seconds: float) -> None:
    """Give huggingface_hub's shared HTTP client a timeout (it has none by default).

    ``HfApi`` calls such as ``list_repo_commits`` take no timeout argument and would
    otherwise wait forever on a Hub that accepts the connection but never answers (the
    reads of ``hub_reads`` pass theirs with each request).
    """
    from huggingface_hub import get_session

    session = get_session()
    if session.timeout.read is None:
        session.timeout = seconds


def _translate(repo_id: str | None, endpoint: str, *, preflight: bool = True) -> translated:
    """Raise the thinnka error for any exception of the block (context manager)."""
    return translated(
        lambda exc: translate_hub_error(
            exc, endpoint=endpoint, repo_id=repo_id, preflight=preflight
        )
    )

"""The Hugging Face Hub, through huggingface_hub, behind thinnka's records.

huggingface_hub's exceptions are translated here: a gated model the token
may not read and a missing model become ``PreflightError`` (with the model's
access URL), a refused token ``AuthError``, server trouble ``TransientError``.
The token is always passed explicitly (``False`` when there is none), so a
token cached on this machine is never used by accident.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from thinnka.errors import AuthError, PreflightError, RemoteError, TransientError

__all__ = ["HubClient", "HubModel", "TokenInfo"]


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
class TokenInfo:
    user: str
    role: str
    orgs: tuple[str, ...]
    can_write: frozenset[str]  # namespaces this token may create/push repos in

    def may_write(self, namespace: str) -> bool:
        return namespace in self.can_write or "*" in self.can_write


class HubClient:
    def __init__(self, *, endpoint: str | None, token: str | None) -> None:
        from huggingface_hub import HfApi

        self.endpoint = (endpoint or "https://huggingface.co").rstrip("/")
        self._token: str | bool = token or False
        self._api = HfApi(endpoint=self.endpoint, token=self._token)

    # ------------------------------------------------------------ reads
    def model(self, repo_id: str) -> HubModel:
        """Model facts; refuses a model this token cannot read (gated or missing)."""
        with _translate(repo_id, self.endpoint):
            info = self._api.model_info(repo_id, files_metadata=True, token=self._token)
        files = tuple((s.rfilename, int(s.size or 0)) for s in (info.siblings or []))
        names = {name for name, _ in files}
        # Metadata of gated repos is public: fetching config.json proves read access.
        # Both small files are fetched at once.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hub") as pool:
            asked = {
                name: pool.submit(self._json_file, repo_id, name)
                for name in ("config.json", "tokenizer_config.json")
                if name in names
            }
        config = asked["config.json"].result() if "config.json" in asked else None
        tokenizer_config = (
            asked["tokenizer_config.json"].result() if "tokenizer_config.json" in asked else None
        )
        template = _template_text(tokenizer_config)
        if template is None and "chat_template.jinja" in names:
            template = self._text_file(repo_id, "chat_template.jinja")
        safetensors = getattr(info, "safetensors", None)
        return HubModel(
            repo_id=repo_id,
            gated=info.gated or False,
            private=bool(info.private),
            files=files,
            safetensors_total=getattr(safetensors, "total", None),
            safetensors_parameters=dict(getattr(safetensors, "parameters", None) or {}) or None,
            config=config,
            has_chat_template=template is not None,
            system_role_supported=template is None or "System role not supported" not in template,
            transformers_version=(config or {}).get("transformers_version"),
            model_type=(config or {}).get("model_type"),
            sha=info.sha,
        )

    def whoami(self) -> TokenInfo:
        if not self._token:
            raise AuthError("No Hugging Face token: set HF_TOKEN.")
        with _translate(None, self.endpoint):
            data = self._api.whoami(token=self._token)
        return _token_info(data)

    def last_commit_at(self, repo_id: str) -> dt.datetime | None:
        """When the newest commit of ``repo_id`` was made; None if the repo is absent."""
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            with _translate(repo_id, self.endpoint, preflight=False):
                commits = self._api.list_repo_commits(repo_id, token=self._token)
        except RemoteError as exc:
            if isinstance(exc.__cause__, RepositoryNotFoundError):
                return None
            raise
        return max((c.created_at for c in commits), default=None)

    # ------------------------------------------------------------ helpers
    def _download(self, repo_id: str, filename: str) -> str:
        from huggingface_hub import hf_hub_download

        with _translate(repo_id, self.endpoint):
            return hf_hub_download(repo_id, filename, token=self._token, endpoint=self.endpoint)

    def _json_file(self, repo_id: str, filename: str) -> dict[str, Any] | None:
        try:
            with open(self._download(repo_id, filename), encoding="utf-8") as handle:
                data = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _text_file(self, repo_id: str, filename: str) -> str:
        with open(self._download(repo_id, filename), encoding="utf-8") as handle:
            return handle.read()


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


class _translate:
    """Map huggingface_hub/httpx errors to thinnka's tree (context manager)."""

    def __init__(self, repo_id: str | None, endpoint: str, *, preflight: bool = True) -> None:
        self.repo_id, self.endpoint, self.preflight = repo_id, endpoint, preflight

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None:
            return False
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

        repo = self.repo_id
        if isinstance(exc, GatedRepoError) and self.preflight:
            raise PreflightError(
                f"Model {repo} is gated and this token has no access. "
                f"Request access at {self.endpoint}/{repo} and run again.",
                reason="gated",
            ) from exc
        if isinstance(exc, RepositoryNotFoundError) and self.preflight:
            raise PreflightError(
                f"Model not found: {repo} (or it is private and this token cannot see it).",
                reason="model_not_found",
            ) from exc
        if isinstance(exc, HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else 0
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if status in (401, 403):
                raise AuthError(f"Hugging Face refused the token: {first_line}") from exc
            if status == 429 or status >= 500:
                raise TransientError(f"Hugging Face Hub answered HTTP {status}.") from exc
            raise RemoteError(f"Hugging Face error: {first_line}") from exc
        import httpx

        if isinstance(exc, httpx.TransportError | OSError) and not isinstance(
            exc, FileNotFoundError
        ):
            raise TransientError(f"Hugging Face Hub unreachable ({type(exc).__name__}).") from exc
        return False

"""The Hub reads a run's preflight makes (model info, whoami, small files), as plain requests.

Why not ``HfApi`` / ``hf_hub_download``: importing ``huggingface_hub.hf_api`` and
``huggingface_hub.file_download`` costs about 0.14 s of CPU on the 2-core machine, on the
path before a run's pod is created (issue 26); these reads need none of it. They issue the
requests those functions issue, through the same pieces of huggingface_hub, which import
cheaply: its shared HTTP client (``get_session``: redirects followed, the offline switch and
a request id on every request) and ``hf_raise_for_status``, so a failure raises the same
exception types (``GatedRepoError``, ``RepositoryNotFoundError``, ``HfHubHTTPError`` by
status, the HTTP library's connection errors) for ``hub_errors`` to translate.

- model info: ``GET {endpoint}/api/models/{repo}?blobs=true`` (``model_info(files_metadata=True)``);
  the answer's ``siblings`` then carry each file's ``size``. A gated repo's metadata is
  public: this answers 200 whether or not the token was granted access.
- whoami: ``GET {endpoint}/api/whoami-v2``.
- a file: ``GET {endpoint}/{repo}/resolve/{revision}/{file}``, the URL a download asks. The
  real Hub answers a small file with a relative redirect to a cache route and a large one
  with a redirect to a CDN; both are followed (the HTTP client drops the token when the
  redirect leaves the Hub's origin). Every Hub answer on this route carries
  ``X-Repo-Commit``; without one the endpoint is not a Hub (as a download concludes). A
  gated repo refuses here (``GatedRepo``), so reading ``config.json`` proves read access.
  Nothing is written to the Hugging Face cache.

Headers are built here, not by ``build_hf_headers``: that one imports the token-file
machinery (filelock, configparser: about 0.03 s), and on its first call each day looks up
an "agent harnesses" list on the Hub (one more request, 3 s timeout). The User-Agent keeps
its form (``thinnka/<version>; hf_hub/<version>; python/<version>``) and the token goes
only in the ``authorization`` header, never in a URL. Every request has a timeout.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from thinnka import __version__
from thinnka.errors import RemoteError

if TYPE_CHECKING:
    import httpx

__all__ = ["HubReads", "ModelListing", "parse_listing"]


@dataclass(frozen=True)
class ModelListing:
    """What the model info answer says (the files' contents are read separately)."""

    files: tuple[tuple[str, int], ...]  # (file name, size in bytes)
    gated: str | bool
    private: bool
    sha: str | None
    safetensors_total: int | None
    safetensors_parameters: dict[str, int] | None


@dataclass(frozen=True)
class HubReads:
    """Plain GETs against one Hub endpoint with one token (``None``: anonymous)."""

    endpoint: str
    token: str | None = field(repr=False)
    timeout: float

    def model_info(self, repo_id: str) -> dict[str, Any]:
        _validate(repo_id)
        response = self._get(f"{self.endpoint}/api/models/{repo_id}", params={"blobs": True})
        data = self._json(response)
        if not isinstance(data, dict) or "id" not in data:
            raise RemoteError(
                f"{self.endpoint} did not answer as a Hugging Face Hub (the model info of "
                f"{repo_id} is no JSON object with an id); check HF_ENDPOINT."
            )
        return data

    def whoami(self) -> dict[str, Any]:
        data = self._json(self._get(f"{self.endpoint}/api/whoami-v2"))
        if not isinstance(data, dict):
            raise RemoteError(
                f"{self.endpoint} did not answer as a Hugging Face Hub (whoami is no JSON "
                "object); check HF_ENDPOINT."
            )
        return data

    def file(self, repo_id: str, filename: str, revision: str = "main") -> bytes:
        """The bytes of ``filename`` at ``revision`` (a branch or a commit sha)."""
        _validate(repo_id)
        url = f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"
        response = self._get(url)
        if not any("X-Repo-Commit" in r.headers for r in (*response.history, response)):
            raise RemoteError(
                f"{self.endpoint} did not answer as a Hugging Face Hub (no X-Repo-Commit "
                f"with {repo_id}/{filename}); check HF_ENDPOINT."
            )
        return response.content

    def _get(self, url: str, params: Mapping[str, bool] | None = None) -> httpx.Response:
        from huggingface_hub import get_session, hf_raise_for_status

        response = get_session().get(
            url, headers=self._headers(), params=dict(params or {}), timeout=self.timeout
        )
        hf_raise_for_status(response)
        return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:  # JSONDecodeError, or a body that is no text
            raise RemoteError(
                f"{self.endpoint} did not answer as a Hugging Face Hub (its answer to "
                f"{response.request.url.path} is no JSON); check HF_ENDPOINT."
            ) from None

    def _headers(self) -> dict[str, str]:
        import huggingface_hub

        agent = (
            f"thinnka/{__version__}; hf_hub/{huggingface_hub.__version__}; "
            f"python/{platform.python_version()}"
        )
        headers = {"user-agent": agent}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers


def _validate(repo_id: str) -> None:
    """As HfApi and downloads check it: a malformed id raises ``HFValidationError``."""
    from huggingface_hub.utils._validators import validate_repo_id

    validate_repo_id(repo_id)


def parse_listing(data: Mapping[str, Any]) -> ModelListing:
    """The model info answer's fields thinnka uses, parsed as ``ModelInfo`` parses them."""
    files = tuple(
        (str(sibling["rfilename"]), int(sibling.get("size") or 0))
        for sibling in data.get("siblings") or []
        if isinstance(sibling, dict) and sibling.get("rfilename")
    )
    safetensors = data.get("safetensors")
    if not isinstance(safetensors, dict):  # absent for repos without safetensors weights
        safetensors = {}
    total = safetensors.get("total")
    parameters = safetensors.get("parameters")
    counts = {str(k): int(v) for k, v in parameters.items()} if isinstance(parameters, dict) else {}
    return ModelListing(
        files=files,
        gated=data.get("gated") or False,
        private=bool(data.get("private")),
        sha=data.get("sha"),
        safetensors_total=int(total) if total is not None else None,
        safetensors_parameters=counts or None,
    )

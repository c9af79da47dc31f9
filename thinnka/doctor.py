"""``thinnka doctor``: is this machine ready to run thinnka?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from thinnka.errors import ThinnkaError

if TYPE_CHECKING:
    from thinnka.operations import Session

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def run_checks(session: Session) -> list[Check]:
    settings = session.settings
    checks = [
        Check(
            "database",
            "ok",
            f"{session.store.count_runs()} runs; installation {session.store.installation_id()}",
        ),
        Check(
            "env file",
            "ok" if settings.env_file else "warn",
            str(settings.env_file) if settings.env_file else "no .env found (environment only)",
        ),
    ]
    services = session.get_services()
    checks.append(_runpod(services, bool(settings.runpod_api_key), settings.runpod_api))
    checks.append(_hub(services, bool(settings.hf_token)))
    checks.append(_ssh_keys(settings))
    return checks


def _runpod(services: object, has_key: bool, transport: str) -> Check:
    """Whether the key works on the transport in use (REST v2 or GraphQL), said by name."""
    via = f"{_TRANSPORTS.get(transport, transport)} (THINNKA_RUNPOD_API={transport})"
    try:
        offers = services.runpod.gpu_offers(1)  # type: ignore[attr-defined]
        if has_key:
            services.runpod.list_pods()  # type: ignore[attr-defined]
    except ThinnkaError as exc:
        return Check("runpod", "fail", f"{via}: {exc.message}")
    if not has_key:
        return Check(
            "runpod",
            "fail",
            f"{via}: catalog readable ({len(offers)} GPU types); no RUNPOD_API_KEY",
        )
    return Check("runpod", "ok", f"{via}: key accepted; {len(offers)} GPU types in the catalog")


_TRANSPORTS = {"rest": "REST v2", "graphql": "GraphQL"}


def _hub(services: object, has_token: bool) -> Check:
    if not has_token:
        return Check("huggingface", "fail", "no HF_TOKEN or HUGGINGFACE_HUB_TOKEN")
    try:
        token = services.hub.whoami()  # type: ignore[attr-defined]
    except ThinnkaError as exc:
        return Check("huggingface", "fail", exc.message)
    status = "ok" if token.may_write(token.user) else "warn"
    return Check("huggingface", status, f"token of {token.user} ({token.role})")


def _ssh_keys(settings: object) -> Check:
    from thinnka.options import RunOptions
    from thinnka.sshkeys import resolve_key_pair

    try:
        keys = resolve_key_pair(RunOptions(), settings)  # type: ignore[arg-type]
    except ThinnkaError as exc:
        return Check("ssh keys", "fail", exc.message)
    return Check("ssh keys", "ok", f"private key {keys.private_key_path}")

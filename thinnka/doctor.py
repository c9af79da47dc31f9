"""``thinnka doctor``: is this machine ready to run thinnka?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from thinnka.errors import ThinnkaError

if TYPE_CHECKING:
    from thinnka.operations import Session
    from thinnka.services import Services
    from thinnka.settings import Settings

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def run_checks(session: Session) -> list[Check]:
    """Every check, its detail scrubbed of secrets (a URL's password, a token)."""
    from thinnka.logs import redact

    secrets = session.settings.secrets()
    return [
        Check(check.name, check.status, redact(check.detail, secrets)) for check in _checks(session)
    ]


def _checks(session: Session) -> list[Check]:
    settings = session.settings
    checks = [
        _database(session),
        _env_file(settings),
    ]
    checks += [Check("settings", "fail", problem) for problem in settings.problems]
    services = session.get_services()
    # A base URL with a password makes httpx send it instead of the key: blame the URL.
    if any(p.startswith("RUNPOD_API_BASE_URL") for p in settings.problems):
        checks.append(Check("runpod", "fail", "not checked: RUNPOD_API_BASE_URL is unusable"))
    else:
        checks.append(_runpod(services, bool(settings.runpod_api_key), settings.runpod_api))
        if checks[-1].status == "ok":
            checks += _shared_installation(session)
            checks += _volumes(services)
    hub_settings = ("HF_ENDPOINT", "HF_TOKEN", "HUGGINGFACE_HUB_TOKEN")
    if any(p.startswith(hub_settings) for p in settings.problems):
        checks.append(Check("huggingface", "fail", "not checked: the Hub settings are unusable"))
    else:
        checks.append(_hub(services, bool(settings.hf_token)))
    checks.append(_ssh_keys(settings))
    return checks


def _database(session: Session) -> Check:
    """Kind, server version and migration state: on a shared server, worth seeing."""
    from thinnka.errors import ConfigError
    from thinnka.store import Store
    from thinnka.store.db import HEAD_REVISION, database_info, open_engine

    store, settings = session.store, session.settings
    if store.read_only:  # doctor only reads; whether the other commands can write is news
        try:
            store = Store(open_engine(settings.database_url, settings.state_dir))
        except ConfigError as exc:
            info = database_info(store.engine)
            installation = store.known_installation_id() or "none yet"
            return Check("database", "warn", f"{info.kind} {info.server_version}; "
                         f"{info.migration_state}; {store.count_runs()} runs; installation "
                         f"{installation}; read-only: {exc.message}")  # fmt: skip
    info = database_info(store.engine)
    return Check(
        "database",
        "ok" if info.revision == HEAD_REVISION else "warn",
        f"{info.kind} {info.server_version} at {info.url}; {info.migration_state}; "
        f"{store.count_runs()} runs; installation {store.installation_id()}",
    )


def _env_file(settings: Settings) -> Check:
    if settings.env_file is None:
        return Check("env file", "warn", "no .env found (environment only)")
    if settings.env_warnings:
        return Check("env file", "warn", " ".join(settings.env_warnings))
    return Check("env file", "ok", str(settings.env_file))


def _runpod(services: Services, has_key: bool, transport: str) -> Check:
    """Whether the key works on the transport in use (REST v2 or GraphQL), said by name."""
    via = f"{_TRANSPORTS.get(transport, transport)} (THINNKA_RUNPOD_API={transport})"
    try:
        offers = services.runpod.gpu_offers(1)
        if has_key:
            services.runpod.list_pods()
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


def _volumes(services: Services) -> list[Check]:
    """The account's network volumes (REST v2): thinnka never deletes one, and Runpod bills
    them while they exist, so they are worth seeing."""
    from thinnka.clients.runpod.volumes import volume_api

    api = volume_api(services.runpod)
    if api is None:
        return []
    try:
        volumes = api.list_volumes()
    except ThinnkaError as exc:
        return [Check("volumes", "warn", f"network volumes not listed: {exc.message}")]
    listed = ", ".join(f"{v.name} ({v.id}, {v.size_gb} GB, {v.data_center})" for v in volumes)
    return [Check("volumes", "ok", f"network volumes: {listed or 'none'}")]


def _shared_installation(session: Session) -> list[Check]:
    """Pods that carry this installation's id for runs this database does not know: another
    database (a copy or a restore of this one) shares the id, and so the pods' owner tag."""
    from thinnka.errors import RunNotFound

    # Read, never made here: doctor also runs on a read-only database, and without an id
    # no pod can carry it.
    owner = session.store.known_installation_id()
    if owner is None:
        return []
    services = session.get_services()
    try:
        pods = [pod for pod in services.runpod.list_pods() if pod.env.get("THINNKA_OWNER") == owner]
    except ThinnkaError as exc:
        return [Check("installation", "warn", f"pods not checked: {exc.message}")]
    unknown = []
    for pod in pods:
        try:
            session.store.get(pod.env.get("THINNKA_RUN_ID", ""))
        except RunNotFound:
            unknown.append(pod.env.get("THINNKA_RUN_ID") or pod.id)
    if not unknown:
        return []
    return [
        Check(
            "installation",
            "warn",
            f"{len(unknown)} pod(s) carry installation {owner} for runs this database does not "
            f"know ({', '.join(sorted(unknown)[:5])}): another database, a copy or a restore "
            "of this one, shares its installation id. `reap` leaves such pods until their own "
            "--max-hours has passed; give each copy its own database (an empty one makes a "
            "new installation id) or share one (THINNKA_DB_URL).",
        )
    ]


def _hub(services: Services, has_token: bool) -> Check:
    if not has_token:
        return Check("huggingface", "fail", "no HF_TOKEN or HUGGINGFACE_HUB_TOKEN")
    try:
        token = services.hub.whoami()
    except ThinnkaError as exc:
        return Check("huggingface", "fail", exc.message)
    status: Literal["ok", "warn"] = "ok" if token.may_write(token.user) else "warn"
    return Check("huggingface", status, f"token of {token.user} ({token.role})")


def _ssh_keys(settings: Settings) -> Check:
    from thinnka.options import RunOptions
    from thinnka.pod.keys import resolve_key_pair

    try:
        keys = resolve_key_pair(RunOptions(), settings)
    except ThinnkaError as exc:
        return Check("ssh keys", "fail", exc.message)
    return Check("ssh keys", "ok", f"private key {keys.private_key_path}")

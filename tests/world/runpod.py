"""An offline Runpod API emulator: GraphQL, REST v2 and test controls over real HTTP on 127.0.0.1.

Why a real server instead of mocking the client: thinnka's Runpod client, the official `runpod`
SDK and a separate CLI process must all be able to talk to the same pods over a real socket, so
retry, timeout and connection-drop handling are exercised as they are in production. The
behaviour follows the real API as `docs/runpod.md` describes it.

Use it from tests::

    with FakeRunpod(ssh_port=sshd.port) as fake:
        fake.set_stock("NVIDIA L40S", 0)
        ...  # point the client at fake.base_url with fake.api_key

or by hand: ``python -m tests.world.runpod --port 0 --ssh-port 2222`` prints ``READY <port>``
and then one JSON line with the keys and URLs, and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from tests.world._random_faults import FaultSettings, RandomFaults, injected
from tests.world._runpod_http import Server, make_server
from tests.world._runpod_podkeys import (
    container_log,
    on_reset,
    pod_env,
    pod_keys,
    set_image_env,
)
from tests.world._runpod_records import (
    AccountKeys,
    Fault,
    PodLedgerEntry,
    PodView,
)
from tests.world._runpod_state import World
from tests.world._runpod_v2state import RateLimiter, RequestRecord
from tests.world._runpod_volumes import registry as volume_registry
from tests.world._runpod_volumes import use_disks
from tests.world._serve import serve_until_signalled

if TYPE_CHECKING:
    from tests.world.sshd import FakeSshd

__all__ = ["AccountKeys", "FakeRunpod", "PodLedgerEntry", "PodView", "RequestRecord", "main"]

# Realistic by default: right after a create, `runtime` and `ssh.direct` are null for a moment
# (v2 status PROVISIONING, then STARTING), as on the real API. Tests that need a pod at once
# pass boot_delay=0.0 or push the clock with `advance_time`.
DEFAULT_BOOT_DELAY = 0.6
_FOREIGN_IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"


class FakeRunpod:
    """The emulator: one HTTP server over one `World`; every control is also an HTTP call.

    `start()` binds and serves in a daemon thread and returns in milliseconds (the schema is
    built at import), so a whole emulated world can be started per test session cheaply.
    """

    def __init__(
        self,
        *,
        ssh_port: int | None = None,
        ssh_host: str = "127.0.0.1",
        boot_delay: float = DEFAULT_BOOT_DELAY,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        pub_key: str = "",
        authorize_key: Callable[[str], None] | None = None,
    ) -> None:
        self.world = World(
            boot_delay=boot_delay,
            ssh_host=ssh_host,
            ssh_port=ssh_port,
            pub_key=pub_key,
            api_key=api_key,
            authorize_key=authorize_key,
        )
        self._address = (host, port)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeRunpod:
        if self._server is not None:
            raise RuntimeError("FakeRunpod is already started")
        self._server = make_server(self, self._address)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-runpod",
            daemon=True,
        )
        self._thread.start()
        pod_keys(self.world).base_url = self.base_url  # what pods get as RUNPOD_API_BASE_URL
        return self

    def stop(self) -> None:
        on_reset(self.world)  # the pods' processes (start commands, jobs) end with it
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeRunpod:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- where and who -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeRunpod is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What `RUNPOD_API_BASE_URL` should be: clients append `/graphql` (or `/v2`)."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_control"

    @property
    def api_key(self) -> str:
        return self.world.main.api_key

    @property
    def read_only_key(self) -> str:
        return self.world.main.read_only_key

    @property
    def account_id(self) -> str:
        return self.world.main.account_id

    def info(self) -> dict[str, Any]:
        """What the CLI prints and `GET /_control/info` answers."""
        return {
            "api_key": self.api_key,
            "read_only_key": self.read_only_key,
            "account_id": self.account_id,
            "base_url": self.base_url,
            "graphql": self.graphql_url,
            "rest": self.rest_url,
            "control": self.control_url,
            "ssh_host": self.world.ssh_host,
            "ssh_port": self.world.ssh_port,
        }

    def client_env(self) -> dict[str, str]:
        """Environment that points thinnka (and the official SDK) at this emulator."""
        return {"RUNPOD_API_BASE_URL": self.base_url, "RUNPOD_API_KEY": self.api_key}

    def add_account(self, pub_key: str = "") -> AccountKeys:
        """Another account with its own pods (stock and faults are shared by all accounts)."""
        return self.world.create_account(pub_key=pub_key)

    def set_pub_key(self, pub_key: str, account_id: str | None = None) -> None:
        """The account's registered SSH keys, injected as PUBLIC_KEY when `startSsh: true`."""
        with self.world.lock:
            self.world.account(account_id).pub_key = pub_key

    def set_cluster_nodes(self, nodes: list[FakeSshd]) -> None:
        """Node ``rank`` of every cluster created from now on is reached at ``nodes[rank]``
        (its own sshd; ``tests/world/cluster_nodes.py``); empty: the world's one sshd."""
        from tests.world._runpod_clusters import ClusterNodeEndpoint, set_cluster_nodes

        endpoints = [ClusterNodeEndpoint(n.port, n.authorize) for n in nodes]
        set_cluster_nodes(self.world, endpoints)

    # ---- controls ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Default stock, no pods, no faults, empty ledger, initial boot delay, no latency."""
        self.world.reset()

    def set_stock(self, gpu_type_id: str, stock: int | str | None) -> None:
        """Free GPUs of a type: a count, or "High"/"Medium"/"Low"/"None" (None = no capacity)."""
        self.world.set_stock(gpu_type_id, stock)

    def stock(self, gpu_type_id: str) -> int:
        return self.world.available(gpu_type_id)

    def vanish_stock_at_create(self, gpu_type_id: str) -> None:
        """The catalog keeps showing `gpu_type_id` in stock, but creating one fails with the
        no-capacity error (the race between reading stock and deploying)."""
        with self.world.lock:
            self.world.phantom_stock.add(gpu_type_id)

    def inject_faults(
        self,
        *,
        status: int | None = None,
        count: int = 1,
        drop: bool = False,
        delay: float | None = None,
        retry_after: float | None = None,
        match: str | None = None,
        after: bool = False,
        skip: int = 0,
    ) -> None:
        """The next `count` API requests (whose `METHOD /path body` text contains `match`, if
        given) answer `status` (with `Retry-After` if given), lose their connection, or get
        their real answer `delay` seconds late.

        With `after=True` the request is carried out first (the pod is created or deleted)
        and only its answer is replaced, lost or held back: "the create succeeded, the
        answer was lost" (or is slow, while the pod already exists and bills).
        `skip` lets that many matching requests through first.
        """
        if sum((status is not None, drop, delay is not None)) != 1:
            raise ValueError("give exactly one of status=..., drop=True or delay=...")
        kind = "drop" if drop else "delay" if delay is not None else "status"
        self.world.add_fault(
            Fault(kind, status or 0, count, retry_after, match, after, skip, delay or 0.0)
        )

    def clear_faults(self) -> None:
        """No queued faults, and random faults off."""
        with self.world.lock:
            self.world.faults.clear()
            self.world.random_faults = None

    def random_faults(self, *, rate: float, seed: int, **settings: Unpack[FaultSettings]) -> None:
        """From now on a seeded fraction `rate` of API requests (REST v2 and GraphQL, never
        `/_control`) fail: 429 with `Retry-After: retry_after`, 500, or a dropped connection;
        a share `lost_answers` of the 500s and drops come after the request took effect.
        `agent`: only requests whose User-Agent contains it. See `tests/world/_random_faults.py`.
        """
        faults = RandomFaults(rate=rate, seed=seed, **settings)
        with self.world.lock:
            self.world.random_faults = faults

    def injected_faults(self) -> dict[str, int]:
        """What `random_faults` handed out since it was switched on, per kind (and `after`,
        `total`); all zero when it is off."""
        return injected(self.world.random_faults)

    def set_latency(self, seconds: float) -> None:
        """Added delay before every API answer (controls are never delayed)."""
        self.world.latency = seconds

    def set_boot_delay(self, seconds: float) -> None:
        """Seconds from create/resume until `runtime.ports` appears, for later boots."""
        self.world.boot_delay = seconds

    def never_boot(self, enabled: bool = True, pod_id: str | None = None) -> None:
        """Image-pull hang: runtime stays null (for one pod, or every pod started from now)."""
        if pod_id is not None:
            self.world.hang_boot(pod_id)
        else:
            self.world.set_never_boot(enabled)

    def kill_pod(self, pod_id: str, *, vanish: bool = False) -> None:
        """The pod dies under the client: EXITED with runtime null, or gone entirely."""
        self.world.kill(pod_id, vanish=vanish)

    def lose_pod(self, pod_id: str) -> None:
        """Runpod loses the pod (a host failure, a console terminate): it is gone, and so
        is its disk (with disks on, ``use_disks``); a network volume's files stay."""
        self.world.kill(pod_id, vanish=True)

    def use_disks(self, root: Path, store: Path) -> None:
        """From now on each pod gets its own disk as ``root`` (its /workspace): a fresh one,
        or its network volume's; a terminated or lost pod's disk is deleted
        (``tests/world/_runpod_volumes.py``)."""
        use_disks(self.world, root, store)

    def volumes(self) -> list[dict[str, Any]]:
        """Every network volume of every account, as v2 renders it."""
        reg = volume_registry(self.world)
        with reg.lock:
            return [v.render() for v in reg.volumes.values()]

    def add_foreign_pod(
        self,
        name: str = "my-jupyter",
        *,
        env: dict[str, str] | None = None,
        gpu_type_id: str = "NVIDIA RTX A6000",
        gpu_count: int = 1,
        image_name: str = _FOREIGN_IMAGE,
        ports: str = "8888/http,22/tcp",
        status: str = "RUNNING",
        account_id: str | None = None,
    ) -> str:
        """A pod the client did not create (already booted, holding no stock); returns its id."""
        spec = {
            "name": name,
            "imageName": image_name,
            "gpuTypeId": gpu_type_id,
            "gpuCount": gpu_count,
            "ports": ports,
            "env": [{"key": k, "value": v} for k, v in (env or {}).items()],
        }
        with self.world.lock:
            return self.world.add_pod(
                self.world.account(account_id), spec, foreign=True, status=status
            ).id

    # ---- REST v2 scripting ------------------------------------------------------------------
    def set_cloud_capacity(self, gpu_type_id: str, cloud: str, available: bool) -> None:
        """Open or close one (GPU type, SECURE|COMMUNITY): a closed one shows availability NONE
        in the v2 catalog and its v2 create answers the documented no-capacity 400."""
        with self.world.lock:
            (self.world.v2.closed.discard if available else self.world.v2.closed.add)(
                (gpu_type_id, cloud)
            )

    def set_balance_exhausted(self, exhausted: bool = True) -> None:
        """Every v2 create answers 402 (insufficient balance)."""
        self.world.v2.balance_exhausted = exhausted

    def forbid_pool(self, gpu_type_id: str) -> None:
        """v2 creates of this GPU type answer 403 "cannot access the requested pool"."""
        with self.world.lock:
            self.world.v2.forbidden_pools.add(gpu_type_id)

    def set_community_public_ip(self, enabled: bool) -> None:
        """False: COMMUNITY pods never get a public port, so `ssh.direct` stays null."""
        self.world.v2.community_public_ip = enabled

    def set_running_at_once(self, enabled: bool = True) -> None:
        """v2 status RUNNING right after create while `runtime` is still null (seen live)."""
        self.world.v2.running_at_once = enabled

    def set_billing_delay(self, seconds: float) -> None:
        """Seconds after a pod's create before `/v2/billing/pods` shows its spend."""
        self.world.v2.billing_delay = seconds

    def set_rate_limit(self, *windows: tuple[str, int, float]) -> None:
        """The v2 quota per key, e.g. `("minute", 60, 60.0)`; counters start afresh."""
        self.world.limiter = RateLimiter(tuple(windows))

    def fail_pod(self, pod_id: str) -> None:
        """The pod becomes unrecoverable: v2 status ERROR with runtime null."""
        self.world.fail_pod(pod_id)

    def requests(self) -> list[RequestRecord]:
        """Every API request since the last reset (surface, how it authenticated, status)."""
        with self.world.lock:
            return list(self.world.requests)

    def advance_time(self, seconds: float) -> None:
        """Jump the emulator's clock: boots finish and cost accrues without sleeping."""
        self.world.advance(seconds)

    # ---- reading -----------------------------------------------------------------------------
    def pods(self, account_id: str | None = None) -> list[PodView]:
        """Live pods (RUNNING and EXITED) of one account, or of every account when None."""
        with self.world.lock:
            accounts = (
                [self.world.account(account_id)]
                if account_id
                else list(self.world.accounts.values())
            )
            return [self.world.view(p) for a in accounts for p in a.pods.values()]

    def pod(self, pod_id: str) -> PodView | None:
        with self.world.lock:
            try:
                return self.world.view(self.world.find(pod_id)[1])
            except KeyError:
                return None

    def pod_env(self, pod_id: str) -> dict[str, str]:
        """The pod's container env as Runpod sets it (RUNPOD_POD_ID, its pod-scoped key...)."""
        return pod_env(self.world, pod_id)

    def set_image_env(self, image: str, env: dict[str, str]) -> None:
        """What ``image``'s Dockerfile ``ENV`` sets (``PATH`` ...): pods created from it get
        it in their sessions, as Runpod's images export it (until the next reset). ``*``
        stands for every image without env of its own."""
        set_image_env(self.world, image, env)

    def container_log(self, pod_id: str) -> str:
        """What the pod's start command printed so far (empty without one)."""
        try:
            return container_log(self.world, pod_id).read_text(errors="replace")
        except OSError:
            return ""

    def ledger(self) -> list[PodLedgerEntry]:
        """Every pod ever created since the last reset, terminated ones included."""
        return self.world.ledger()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print READY <port> and one JSON line for the driver."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.world.runpod",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ssh-host", default="127.0.0.1")
    parser.add_argument("--ssh-port", type=int, default=None)
    parser.add_argument("--boot-delay", type=float, default=DEFAULT_BOOT_DELAY)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    fake = FakeRunpod(
        host=args.host,
        port=args.port,
        ssh_host=args.ssh_host,
        ssh_port=args.ssh_port,
        boot_delay=args.boot_delay,
        api_key=args.api_key,
    ).start()
    return serve_until_signalled(fake, fake.info())


if __name__ == "__main__":
    sys.exit(main())

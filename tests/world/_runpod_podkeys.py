"""Pod-scoped keys and the pod's own environment in the fake Runpod.

Runpod puts ``RUNPOD_POD_ID`` and a pod-scoped ``RUNPOD_API_KEY`` into every
pod; that key may act on its own pod only. thinnka's watchdog relies on it to
terminate its pod, so the emulator plays it:

* each created pod gets a key (``rpp_...``) that may ``GET`` and ``DELETE /v2/pods/{own}``,
  ``POST /v2/pods/{own}/action`` with ``terminate``, and run a GraphQL
  ``podTerminate`` of its own pod; anything else is a 403. A member of an Instant Cluster
  may ``DELETE /v2/clusters/{its cluster}`` instead (its own pod alone is a 409, as with the
  account key), and reads its cluster's id from its own pod (``cluster.id``). What a
  pod-scoped key may call is not documented by Runpod: this is the assumption thinnka's
  watchdog and boot guard are written for;
* the pod's env (``RUNPOD_POD_ID``, ``RUNPOD_API_KEY``, ``RUNPOD_API_BASE_URL``)
  reaches the processes the emulated pod runs: the sshd that plays every pod
  sets it for sessions of the key the pod was created with;
* terminating a pod kills its processes (found by their ``RUNPOD_POD_ID``), as
  ending a container does, so a job never outlives its emulated pod;
* an image may bring env of its own (its Dockerfile's ``ENV``, e.g. a ``PATH`` with a
  virtualenv first: ``set_image_env``), which pods of that image get as well, under the
  pod's own; Runpod's images export it to SSH sessions, and so does the emulated pod.
* a pod created with a start command (GraphQL ``dockerArgs``, REST v2 ``args``) runs it
  once its container "starts" (after the boot delay, never for a pod that never boots),
  as Runpod runs it in place of the image's CMD. The emulated image has no ENTRYPOINT
  and no start script of its own (the shared sshd plays its SSH service), so the command
  is the container's whole life; it runs on this machine with the pod's env, its output
  in ``container_log(pod_id)``, and dies with the pod (stop, terminate, reset).

Kept apart from ``_runpod_state.World`` (which calls ``on_pod_created``,
``on_pod_terminated`` and ``on_reset``) so the core state module stays small.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import shlex
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse, value_from_ast_untyped

from tests.world._runpod_model import rand_id

if TYPE_CHECKING:
    from tests.world._runpod_model import Pod
    from tests.world._runpod_state import World

__all__ = [
    "PodKeys",
    "container_log",
    "handle_pod_scoped",
    "is_pod_key",
    "on_pod_created",
    "on_pod_terminated",
    "on_reset",
    "pod_env",
    "pod_keys",
    "set_image_env",
    "start_container",
    "stop_container",
]

PROBLEM = "application/problem+json"


@dataclass
class PodKeys:
    """Pod-scoped keys of one emulator: key -> pod id, and each pod's container env."""

    base_url: str = ""  # set by FakeRunpod once it listens; goes into RUNPOD_API_BASE_URL
    by_key: dict[str, str] = field(default_factory=dict)
    env_of: dict[str, dict[str, str]] = field(default_factory=dict)
    image_env: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    containers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fake-pods-")))


def pod_keys(world: World) -> PodKeys:
    """The world's registry, made on first use."""
    registry = world.__dict__.get("_pod_keys")
    if registry is None:
        registry = world.__dict__.setdefault("_pod_keys", PodKeys())
    return registry  # type: ignore[no-any-return]


def pod_env(world: World, pod_id: str) -> dict[str, str]:
    """What Runpod puts into the pod's container env (empty for an unknown pod)."""
    registry = pod_keys(world)
    with registry.lock:
        return dict(registry.env_of.get(pod_id, {}))


def set_image_env(world: World, image: str, env: dict[str, str]) -> None:
    """Pods created from ``image`` from now on get ``env`` (until the next reset); ``*``:
    pods of every image without env of its own."""
    registry = pod_keys(world)
    with registry.lock:
        registry.image_env[image] = dict(env)


def is_pod_key(world: World, key: str | None) -> bool:
    registry = pod_keys(world)
    with registry.lock:
        return key is not None and key in registry.by_key


def on_pod_created(world: World, pod: Pod, *, authorize: bool = True) -> None:
    """Issue the pod's key and env, and let the SSH "pod" run its sessions with that env."""
    registry = pod_keys(world)
    key = f"rpp_{rand_id(40).upper()}"
    with registry.lock:
        image_env = registry.image_env
        env = dict(image_env.get(pod.image_name, image_env.get("*", {})))
    env.update(RUNPOD_POD_ID=pod.id, RUNPOD_API_KEY=key)
    if registry.base_url:
        env["RUNPOD_API_BASE_URL"] = registry.base_url
    with registry.lock:
        registry.by_key[key] = pod.id
        registry.env_of[pod.id] = env
    if world.authorize_key is None or not authorize:
        return
    takes_env = len(inspect.signature(world.authorize_key).parameters) >= 2
    for name, value in pod.env:
        if name == "PUBLIC_KEY":  # what runpod images do with PUBLIC_KEY at boot
            if takes_env:
                world.authorize_key(value, env)  # type: ignore[call-arg]
            else:
                world.authorize_key(value)


def on_pod_terminated(world: World, pod_id: str) -> None:
    """The key stops working and every process of the pod dies with it."""
    registry = pod_keys(world)
    with registry.lock:
        for key in [k for k, owner in registry.by_key.items() if owner == pod_id]:
            del registry.by_key[key]
        registry.env_of.pop(pod_id, None)
    stop_container(world, pod_id)


def on_reset(world: World) -> None:
    """A fresh account: pods of the last test are gone, so are their processes."""
    registry = pod_keys(world)
    with registry.lock:
        pods = {*registry.env_of, *registry.containers}
        registry.by_key.clear()
        registry.env_of.clear()
        registry.image_env.clear()
    for pod_id in pods:
        stop_container(world, pod_id)


# Host files the start command would run as the image's start script: on this machine
# they are not the emulated image's, so a start command is not run where they exist.
_HOST_START_SCRIPTS = ("/start.sh", "/opt/thinnka/start.sh")


def container_log(world: World, pod_id: str) -> Path:
    """What the pod's start command printed (its container log)."""
    return pod_keys(world).logs / f"{pod_id}.log"


def start_container(world: World, pod: Pod, delay: float) -> None:
    """Run the pod's start command once its container is up (``delay`` s from now)."""
    if not pod.docker_args or math.isinf(delay):
        return
    log = container_log(world, pod.id)
    found = [path for path in _HOST_START_SCRIPTS if os.path.exists(path)]
    if found:
        log.write_text(f"fake runpod: not run, this machine has {found} (not the pod's)\n")
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "THINNKA_"))}
    env.update(pod.env_dict())
    env.update(pod_env(world, pod.id))
    argv = ["sh", "-c", 'sleep "$0"; exec "$@"', f"{delay:.3f}", *shlex.split(pod.docker_args)]
    registry = pod_keys(world)
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=registry.logs, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    with registry.lock:
        registry.containers[pod.id] = process


def stop_container(world: World, pod_id: str) -> None:
    """The container ends: every process of the pod dies (and is reaped)."""
    with pod_keys(world).lock:
        process = pod_keys(world).containers.pop(pod_id, None)
    kill_pod_processes(pod_id)
    if process is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def kill_pod_processes(pod_id: str) -> int:
    """SIGKILL this user's processes whose environment says they run in ``pod_id``."""
    marker = f"RUNPOD_POD_ID={pod_id}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


# ---- the API as a pod-scoped key sees it ------------------------------------------------------
V2Reply = tuple[int, Any, str]


def _problem(status: int, detail: str) -> V2Reply:
    title = {403: "Forbidden", 404: "Not Found"}.get(status, "Error")
    return status, {"title": title, "status": status, "detail": detail}, PROBLEM


def handle_pod_scoped(world: World, key: str, method: str, path: str, body: Any) -> V2Reply:
    """Answer a request made with a pod-scoped key: only "terminate my own pod" is allowed."""
    registry = pod_keys(world)
    with registry.lock:
        own = registry.by_key.get(key)
    if own is None:
        return _problem(401, "missing or invalid API key")
    parts = path.strip("/").split("/")
    wants: str | None = None
    from tests.world._runpod_clusters import member_deletes_cluster

    if parts[:2] == ["v2", "clusters"] and len(parts) == 3 and method == "DELETE":
        status, detail = member_deletes_cluster(world, own, parts[2])
        return (204, None, "application/json") if status == 204 else _problem(status, detail)
    if parts == ["v2", "pods", own] and method == "GET":  # its own pod, read-only
        view = _own_view(world, own)
        if view is None:
            return _problem(404, f"pod {own} not found")
        return 200, view, "application/json"
    if _is_member(world, own) and (parts[:2] == ["v2", "pods"] or path == "/graphql"):
        return _problem(409, "pod is a cluster member: delete its cluster instead")
    if parts[:2] == ["v2", "pods"] and len(parts) == 3 and method == "DELETE":
        wants = parts[2]
    elif parts[:2] == ["v2", "pods"] and len(parts) == 4 and parts[3] == "action":
        if method == "POST" and isinstance(body, dict) and body.get("action") == "terminate":
            wants = parts[2]
    elif path == "/graphql" and method == "POST":
        wants = _graphql_terminate_target(body)
        if wants == own:
            _terminate(world, own, "pod:graphql")
            return 200, {"data": {"podTerminate": None}}, "application/json"
        message = "access denied: a pod-scoped key may only terminate its own pod"
        return 200, {"errors": [{"message": message}], "data": None}, "application/json"
    if wants is None or wants != own:
        return _problem(403, "access denied: a pod-scoped key may only act on its own pod")
    if not _terminate(world, own, "pod:rest"):
        return _problem(404, f"pod {own} not found")
    return 204, None, "application/json"


def _own_view(world: World, pod_id: str) -> dict[str, Any] | None:
    """The pod as ``GET /v2/pods/{id}`` renders it (``cluster`` for a member)."""
    from tests.world._runpod_clusters import member_view

    try:
        return member_view(world, world.find(pod_id)[1])
    except KeyError:
        return None


def _is_member(world: World, pod_id: str) -> bool:
    from tests.world._runpod_clusters import hidden_member

    return hidden_member(world, pod_id)


def _terminate(world: World, pod_id: str, by: str) -> bool:
    from tests.world._runpod_records import RunpodError

    try:
        account, _pod = world.find(pod_id)
        world.terminate(account, pod_id, by=by)
    except (KeyError, RunpodError):
        return False
    return True


def _graphql_terminate_target(body: Any) -> str | None:
    """The podId of a document whose only root field is ``podTerminate``; else None."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return None
    try:
        document = parse(body["query"])
    except GraphQLError:
        return None
    variables = body.get("variables") or {}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        return None
    fields = [s for s in operations[0].selection_set.selections if isinstance(s, FieldNode)]
    if len(fields) != 1 or fields[0].name.value != "podTerminate":
        return None
    for argument in fields[0].arguments:
        if argument.name.value == "input":
            value = value_from_ast_untyped(argument.value, variables)
            if isinstance(value, dict) and isinstance(value.get("podId"), str):
                return str(value["podId"])
    return None

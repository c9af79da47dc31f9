#!/usr/bin/env python3
"""The pod's own dead-man switch: it terminates the pod when nobody will.

Started by ``job.sh`` next to every job (setup, train, merge); one instance per
run folder (an ``flock`` on ``watchdog.lock``), so starting it again is free.
Every few seconds it reads ``watchdog.json`` (written by thinnka) and the jobs'
``NAME.exit`` / ``NAME.pid`` files, and terminates its own pod when

* the job chain has ended (the last job exited 0, or any job failed or died)
  and no thinnka process has touched ``watchdog.heartbeat`` for ``grace_s``
  seconds after that; a live orchestrator touches it while it follows, so it
  reads the last log bytes, verifies the push and terminates the pod itself;
* a job that is not the last of the chain ended successfully, the next one never
  started, and no thinnka process has touched the heartbeat for ``orphan_grace_s``
  (default five grace periods): the orchestrator died between jobs, and nobody is
  left to start the next one;
* the training saved its model but could not push it (``push.held``): not before the
  push hold (``push_hold_s``) has passed, so the model can be pushed by hand meanwhile;
* the run's deadline has passed (``--max-hours``, or ``--max-cost`` at the
  pod's price): then the jobs are stopped first, whoever is attached.

On an Instant Cluster every node runs one, on its own disk, and thinnka touches every
node's heartbeat while it follows rank 0. A node other than rank 0 (``node_rank`` in its
config) whose part of the training ended well waits the push hold rather than the grace
before it deletes the cluster: rank 0 may still be pushing, and rank 0's own watchdog
ends the cluster once it is done. A failed or dead job (rank 0 lost breaks the process
group) and the deadline act as on rank 0.

Each time it records why in ``watchdog.verdict`` before it calls the API.

It uses the pod-scoped key Runpod puts in every pod (``RUNPOD_POD_ID``,
``RUNPOD_API_KEY``, ``RUNPOD_API_BASE_URL`` where present), from its own
environment or, failing that, from the container's first process:
REST v2 ``DELETE /v2/pods/{id}``, then GraphQL ``podTerminate`` as a fallback; a node of an
Instant Cluster (``cluster_id`` in its config) deletes its whole cluster first
(``DELETE /v2/clusters/{id}``), since Runpod refuses to delete a member pod alone.

Standard library only, so it runs on a stock image: it needs ``python3`` (3.8+)
and CA certificates (``ca-certificates``); TLS certificates are verified.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request

PUBLIC_REST = "https://rest.runpod.io/v2"
PUBLIC_GRAPHQL = "https://api.runpod.io/graphql"
DEFAULT_GRACE_S = 120.0
# Between jobs a live orchestrator starts the next one within seconds of the last; a pod
# idle there this many grace periods has nobody left to start it (thinnka writes the
# figure into watchdog.json as orphan_grace_s; this is the fallback).
ORPHAN_GRACE_FACTOR = 5.0
# A training whose model could not be pushed (thinnka_push.py exits 75) keeps its pod this
# many grace periods (thinnka writes push_hold_s into watchdog.json; this is the fallback).
PUSH_HOLD_FACTOR = 30.0
PUSH_HELD_EXIT = 75
COST_MARGIN_S = 60.0  # stop this long before the cost would pass --max-cost
_ATTEMPTS = 4  # per API surface, with backoff; then the next surface, then the next loop


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} watchdog: {message}", flush=True)


def read_config(run_dir: str) -> dict:
    try:
        with open(os.path.join(run_dir, "watchdog.json")) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def container_env() -> dict:
    """Our env, with RUNPOD_* filled from PID 1 where an SSH session lacks them."""
    env = dict(os.environ)
    if env.get("RUNPOD_POD_ID") and env.get("RUNPOD_API_KEY"):
        return env
    try:
        with open("/proc/1/environ", "rb") as handle:
            for item in handle.read().split(b"\0"):
                key, _, value = item.decode("utf-8", "replace").partition("=")
                if key.startswith("RUNPOD_") and key not in env:
                    env[key] = value
    except OSError:
        pass
    return env


def deadline(config: dict) -> tuple[float | None, str]:
    """(epoch, reason) of the earliest limit: --max-hours or --max-cost at the pod's price."""
    started = config.get("pod_started_epoch")
    if not isinstance(started, (int, float)):
        return None, ""
    limits = []
    hours = config.get("max_hours")
    if isinstance(hours, (int, float)) and hours > 0:
        limits.append((started + hours * 3600.0, "max_duration"))
    cost, price = config.get("max_cost"), config.get("cost_per_hr")
    if isinstance(cost, (int, float)) and isinstance(price, (int, float)) and price > 0:
        seconds = cost / price * 3600.0
        limits.append((started + seconds - min(COST_MARGIN_S, seconds * 0.05), "max_cost"))
    return min(limits) if limits else (None, "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (nobody reaped it) is dead for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            text = handle.read().strip()
        return int(text) if text.lstrip("-").isdigit() else None
    except OSError:
        return None


def chain_end(run_dir: str, chain: list[str]) -> tuple[float, str] | None:
    """(when, how) the job chain ended, or None while a job runs or more are due."""
    for name in chain:
        base = os.path.join(run_dir, name)
        code = _read_int(base + ".exit")
        if code is not None:
            if code != 0:
                return os.path.getmtime(base + ".exit"), f"{name} failed (exit {code})"
            continue
        if not os.path.isdir(base + ".started"):
            return None  # not started yet: the orchestrator (or nobody) starts it
        pid = _read_int(base + ".pid")
        if pid is not None and not _alive(pid):
            return os.path.getmtime(base + ".pid"), f"{name} died without an exit code"
        return None
    last = os.path.join(run_dir, chain[-1] + ".exit") if chain else ""
    return (os.path.getmtime(last), "the job chain succeeded") if last else None


def idle_between_jobs(run_dir: str, chain: list[str]) -> tuple[float, str] | None:
    """(since when, what) when a job ended with exit 0 and the next one never started."""
    for index in range(len(chain) - 1):  # not pairwise() nor zip(strict=): Python 3.8
        name, following = chain[index], chain[index + 1]
        if _read_int(os.path.join(run_dir, name + ".exit")) != 0:
            return None  # still running, or failed (``chain_end`` has that)
        if not os.path.isdir(os.path.join(run_dir, following + ".started")):
            ended = os.path.getmtime(os.path.join(run_dir, name + ".exit"))
            return ended, f"{name} ended, {following} never started"
    return None


def push_held(run_dir: str, chain: list[str]) -> bool:
    """True when the training saved its model but could not push it (thinnka_push.py's
    exit 75 and its ``push.held``): the pod holds the only copy."""
    if "train" not in chain:
        return False
    code = _read_int(os.path.join(run_dir, "train.exit"))
    return code == PUSH_HELD_EXIT and os.path.isfile(os.path.join(run_dir, "push.held"))


def node_rank(config: dict) -> int:
    """This node's rank in an Instant Cluster (0: the primary, or a single pod)."""
    rank = config.get("node_rank")
    return rank if isinstance(rank, int) else 0


def last_follow(run_dir: str) -> float:
    try:
        return os.path.getmtime(os.path.join(run_dir, "watchdog.heartbeat"))
    except OSError:
        return 0.0


def stop_jobs(run_dir: str, chain: list[str]) -> None:
    """SIGTERM every running job's session (each job is a session leader), then SIGKILL."""
    groups = []
    for name in chain:
        pid = _read_int(os.path.join(run_dir, name + ".pid"))
        if pid is not None and _read_int(os.path.join(run_dir, name + ".exit")) is None:
            groups.append(pid)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        for pid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end and any(_alive(pid) for pid in groups):
            time.sleep(0.2)


def _request(url: str, method: str, key: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("User-Agent", "thinnka-watchdog/1")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    context = ssl.create_default_context()  # certificates and host names are checked
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            if body is not None:
                answer = json.loads(response.read() or b"{}")
                if answer.get("errors"):
                    text = str(answer["errors"][0].get("message", ""))
                    return 404 if "not found" in text.lower() else 400
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _call(what: str, attempt_once) -> bool:
    """True once the surface says the pod is gone; retries 429/5xx/network, never auth."""
    delay = 2.0
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            status = attempt_once()
        except (OSError, ValueError) as exc:  # refused, reset, timed out, bad TLS, bad JSON
            status, detail = 0, repr(exc)
        else:
            detail = f"HTTP {status}"
        if status in (200, 204, 404):  # 404: already gone
            log(f"{what}: {detail}; the pod is terminating")
            return True
        log(f"{what}: attempt {attempt} failed ({detail})")
        if status in (400, 401, 403, 409, 422):
            return False  # retrying the same request cannot help
        if attempt < _ATTEMPTS:
            time.sleep(delay)
            delay *= 2
    return False


def terminate_pod(env: dict, config: dict) -> bool:
    pod_id = env.get("RUNPOD_POD_ID") or config.get("pod_id") or ""
    key = env.get("RUNPOD_API_KEY") or ""
    if not pod_id or not key:
        log("no RUNPOD_POD_ID/RUNPOD_API_KEY in the pod's env; cannot terminate it")
        return False
    base = (env.get("RUNPOD_API_BASE_URL") or "").rstrip("/")
    public = base in ("", "https://api.runpod.io")
    rest = PUBLIC_REST if public else base + "/v2"
    graphql = PUBLIC_GRAPHQL if public else base + "/graphql"
    mutation = json.dumps(
        {
            "query": "mutation T($input: PodTerminateInput!) { podTerminate(input: $input) }",
            "variables": {"input": {"podId": pod_id}},
        }
    ).encode()
    cluster = str(config.get("cluster_id") or "")
    if cluster and _call(
        "REST DELETE cluster", lambda: _request(f"{rest}/clusters/{cluster}", "DELETE", key)
    ):
        return True  # a cluster's nodes go with it; Runpod refuses to delete one alone
    if _call("REST DELETE", lambda: _request(f"{rest}/pods/{pod_id}", "DELETE", key)):
        return True
    return _call("GraphQL podTerminate", lambda: _request(graphql, "POST", key, mutation))


def record_verdict(run_dir: str, reason: str, detail: str) -> None:
    path = os.path.join(run_dir, "watchdog.verdict")
    with open(path + ".tmp", "w") as handle:
        json.dump({"reason": reason, "detail": detail, "at": time.time()}, handle)
    os.replace(path + ".tmp", path)


def watch(run_dir: str) -> int:
    env = container_env()
    while True:
        config = read_config(run_dir)
        chain = [str(name) for name in config.get("chain") or ["setup", "train"]]
        grace = float(config.get("grace_s", DEFAULT_GRACE_S))
        orphan_grace = float(config.get("orphan_grace_s", grace * ORPHAN_GRACE_FACTOR))
        poll = float(config.get("poll_s", min(5.0, max(grace / 4, 0.5))))
        now = time.time()
        limit, limit_reason = deadline(config)
        action = None
        if limit is not None and now >= limit:
            action = (limit_reason, "the run's deadline passed")
            log(f"{limit_reason}: stopping the jobs")
            record_verdict(run_dir, *action)
            stop_jobs(run_dir, chain)
        else:
            ended = chain_end(run_dir, chain)
            idle = idle_between_jobs(run_dir, chain) if ended is None else None
            held = push_held(run_dir, chain)
            if ended is not None and held:
                # The model is on this pod only: kept for a push by hand, then ended (the
                # deadline above still bounds it), whoever follows or not.
                hold = float(config.get("push_hold_s", grace * PUSH_HOLD_FACTOR))
                if now - ended[0] >= hold:
                    detail = f"{ended[1]}; the unpushed model was kept {hold:.0f} s"
                    action = ("push_hold_ended", detail)
            elif ended is not None:
                quiet = now - max(ended[0], last_follow(run_dir))
                wait = grace
                if node_rank(config) != 0 and ended[1].endswith("succeeded"):
                    # Rank 0 pushes after the training; its watchdog ends the cluster once
                    # it is done. This node waits as long as rank 0 may hold the model.
                    wait = max(grace, float(config.get("push_hold_s", grace * PUSH_HOLD_FACTOR)))
                if quiet >= wait:
                    reason = "succeeded" if ended[1].endswith("succeeded") else "job_failed"
                    action = (reason, f"{ended[1]}; nobody followed for {quiet:.0f} s")
            elif idle is not None:
                quiet = now - max(idle[0], last_follow(run_dir))
                if quiet >= orphan_grace:
                    detail = f"{idle[1]}; nobody followed for {quiet:.0f} s"
                    action = ("idle_between_jobs", detail)
        if action is not None:
            record_verdict(run_dir, *action)
            log(f"terminating the pod: {action[1]}")
            if terminate_pod(env, config):
                return 0
            poll = max(poll, 30.0)  # the API refused or is down: try again later
        time.sleep(poll)


def main(argv: list[str]) -> int:
    run_dir = os.path.abspath(argv[1] if len(argv) > 1 else ".")
    lock = open(os.path.join(run_dir, "watchdog.lock"), "a")  # noqa: SIM115 - held for life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another watchdog guards this run already
    log(f"guarding {run_dir} (pid {os.getpid()})")
    return watch(run_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

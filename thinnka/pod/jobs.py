"""Detached jobs on the pod, and following their logs without gaps or repeats.

A job (setup, train, merge) runs under ``recipes/scripts/job.sh`` in its own
session, writing ``NAME.log``, ``NAME.pid`` and ``NAME.exit`` in the run
folder. Starting is idempotent (an atomic ``mkdir NAME.started`` guards it),
so a crash between "start" and "record" never starts a second training.

Following reads the log from a byte offset kept in the database. Only
complete lines advance the offset, and the local copy's size is recorded with
it in the same write, so re-attaching continues exactly where it stopped: the
local copy holds every line once; the terminal may show the lines of the one
chunk in flight at a kill twice, never none of them.

While following, thinnka touches the watchdog's heartbeat (so the pod does
not terminate itself under a live orchestrator) and enforces the run's
deadline; a broken SSH stream is re-opened, unless the API says the pod is
gone, which ends the step with ``PodGone`` at once instead of a hang.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from thinnka.clients.ssh import PodShell
from thinnka.errors import RemoteError, StateConflict, TransientError
from thinnka.options.limits import orphan_grace_s, run_limit
from thinnka.pod.alive import LostNodes, pod_gone
from thinnka.pod.cluster import NodeBeats
from thinnka.pod.shell import close_shells, open_shell
from thinnka.pod.watchdog import Heartbeat, arm_watchdog
from thinnka.reasons import Reason
from thinnka.step import StepContext
from thinnka.store.models import utcnow
from thinnka.store.records import LogPosition

if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = [
    "JobOutcome",
    "PodGone",
    "check_run_limit",
    "follow_job",
    "log_tail",
    "pod_gone",
    "pod_is_gone",
    "require_pod",
    "start_job",
    "wait_for_job",
]

_RECONNECTS = 5
_LIMIT_REASONS = frozenset({"max_duration", "max_cost"})


class PodGone(RemoteError):
    """The pod no longer exists (or stopped): nothing on it can be followed any more."""

    reason = Reason.pod_lost


def pod_is_gone(ctx: StepContext) -> bool:
    """Whether the run's pod is gone (``pod_gone`` for the step's run)."""
    return pod_gone(ctx.services.runpod, ctx.run.pod_id)


def require_pod(ctx: StepContext, before: str) -> None:
    """``PodGone`` (``pod_lost``) when the run's pod is gone before ``before`` starts.

    The API is asked first because SSH to a gone pod waits out its timeout. Before
    training, a pod is gone either because nobody continued the run after its last job
    (the pod's watchdog ends a pod left idle between jobs) or because it was lost.
    """
    if pod_is_gone(ctx):
        idle = orphan_grace_s(ctx.run.options)
        raise PodGone(
            f"Pod {ctx.run.pod_id} is gone before {before}: either nobody continued the run "
            f"(a pod left idle between jobs, or before its first job, ends itself after "
            f"{idle:g} s), or the pod was lost."
        )


def check_run_limit(ctx: StepContext, what: str) -> None:
    """Fail with max_duration / max_cost once the run's bound has passed."""
    run = ctx.run
    limit = run_limit(run.options, run.pod_started_at, run.cost_per_hr)
    if limit is not None and limit.passed(utcnow()):
        bound = "--max-cost" if limit.reason == "max_cost" else "--max-hours"
        message = f"{what} was stopped: the run reached its {bound} bound."
        raise RemoteError(message, reason=limit.reason)


_TQDM = re.compile(r"(\d+)/(\d+) \[")
_READ_LIMIT = 1 << 20


def _launch(run_dir: str, name: str, argv: list[str]) -> str:
    """Bash that starts job ``name`` once (``mkdir`` is the atomic guard) and leaves
    its pid in ``$pid``; a job started before is adopted, never started twice."""
    d, n = shlex.quote(run_dir), shlex.quote(name)
    return f"""
cd {d} || exit 1
if mkdir {n}.started 2>/dev/null; then
  printf '%s\\n' {shlex.quote(shlex.join(argv))} > {n}.cmd
  setsid nohup bash ./job.sh {n} > {n}.log 2>&1 < /dev/null &
  pid=$!
else
  for _ in $(seq 200); do [ -s {n}.pid ] && break; sleep 0.05; done
  pid=$(cat {n}.pid)
fi
"""


def start_job(shell: PodShell, run_dir: str, name: str, argv: list[str]) -> int:
    """Start ``argv`` as job ``name`` unless it was started before; return its pid."""
    result = shell.run(_launch(run_dir, name, argv) + 'echo "$pid"', timeout=60)
    if not result.ok or not result.stdout.strip().isdigit():
        raise RemoteError(f"Could not start {name} on the pod: {result.stderr.strip()[-500:]}")
    return int(result.stdout.strip())


def wait_for_job(
    ctx: StepContext,
    shell: PodShell,
    run_dir: str,
    name: str,
    *,
    poll: float = 1.0,
    beat: Callable[[], None] | None = None,
) -> int:
    """The exit code of job ``name`` on a worker node, waiting (within the step's deadline);
    ``beat`` is called at each poll (the nodes' heartbeats: nobody follows a log meanwhile)."""
    while True:
        ctx.check_cancelled()
        if beat is not None:
            beat()
        code = job_exit_code(shell, run_dir, name)
        if code is not None:
            return code
        ctx.check_deadline(f"The {name} job on a cluster node")
        time.sleep(poll)


def log_tail(shell: PodShell, run_dir: str, name: str, lines: int = 30) -> str:
    """The last lines of a job's log on a node (for an error message)."""
    path = shlex.quote(f"{run_dir}/{name}.log")
    return shell.run(f"tail -n {lines} {path} 2>/dev/null || true", timeout=30).stdout


def job_exit_code(shell: PodShell, run_dir: str, name: str) -> int | None:
    """The job's exit code, None while it runs; raises if it died unrecorded."""
    recorded = shell.read_from(f"{run_dir}/{name}.exit", 0).strip()  # SFTP: no new process
    if recorded:
        return int(recorded)
    d, n = shlex.quote(run_dir), shlex.quote(name)
    result = shell.run(
        f"cd {d}; if [ -f {n}.exit ]; then cat {n}.exit; "
        f'elif kill -0 "$(cat {n}.pid)" 2>/dev/null; then echo running; else echo gone; fi',
        timeout=30,
    )
    answer = result.stdout.strip()
    if answer == "running":
        return None
    if answer.lstrip("-").isdigit():
        return int(answer)
    raise RemoteError(f"The {name} process on the pod is gone without an exit code.")


@dataclass(frozen=True)
class JobOutcome:
    exit_code: int
    tail: list[str]

    def require_success(self, what: str, reason: str) -> None:
        """Raise with the job's last output lines unless it exited 0."""
        if self.exit_code != 0:
            tail = "\n".join(self.tail[-30:])
            raise RemoteError(
                f"{what} failed with exit status {self.exit_code}. Last output:\n{tail}",
                reason=reason,
            )


class _LineSplitter:
    """Complete lines from a byte stream; ``\\r`` ends a progress update, not a line."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> tuple[list[tuple[str, bool]], int]:
        """(text, is_progress) items and how many bytes they consumed."""
        data = self.pending + chunk
        items: list[tuple[str, bool]] = []
        consumed = 0
        for match in re.finditer(rb"([^\r\n]*)(\r\n|\n|\r)", data):
            text = match.group(1).decode("utf-8", errors="replace")
            items.append((text, match.group(2) == b"\r"))
            consumed = match.end()
        self.pending = data[consumed:]
        return items, consumed


def follow_job(
    ctx: StepContext, shell: PodShell, name: str, stage: str, *, start: list[str] | None = None
) -> JobOutcome:
    """Stream job ``name``'s log until it exits; keep offsets and a local copy.

    With ``start``, the same SSH command first starts the job (unless it was
    started before), saving a round trip; the watchdog is armed first.

    One SSH channel runs ``tail`` from the stored offset, so lines arrive as
    they are written, and ends it when the job's exit file shows. A final read
    over SFTP from the recorded offset catches anything tail left behind.
    """
    if ctx.run.remote.run_dir is None:
        raise StateConflict(f"Run {ctx.run.id} has no run folder recorded.")
    position = ctx.run.remote.logs.get(name, LogPosition())
    local = ctx.settings.remote_log(ctx.run.id)
    _align_local_copy(local, position.local)
    follower = _Follower(ctx, name, stage, local, position)
    if start is not None:  # the first beat of ``_follow_once`` touches its heartbeat
        arm_watchdog(ctx, shell, touch=False)
    reconnects = 0
    while True:
        try:
            return _follow_once(ctx, shell, follower, start)
        except RemoteError as exc:
            if exc.reason in _LIMIT_REASONS:
                raise
            # A terminated pod kills the job, the tail and the SSH session: whatever
            # broke, ask the API before concluding anything about the job.
            if pod_is_gone(ctx):
                raise PodGone(f"The pod is gone while following {name}.") from exc
            if not isinstance(exc, TransientError):
                raise
            reconnects += 1
            if reconnects > _RECONNECTS:
                raise
            ctx.note("reconnect", f"SSH to the pod broke while following {name}; reconnecting.")
            time.sleep(min(2.0**reconnects, 10.0))
            close_shells(ctx.services)
            shell = open_shell(ctx)
            follower.splitter.pending = b""  # tail starts again at the recorded offset


def _follow_once(
    ctx: StepContext, shell: PodShell, follower: _Follower, start: list[str] | None
) -> JobOutcome:
    run_dir, name = ctx.run.remote.run_dir or "", follower.name
    # A cluster: every node's watchdog waits on its own heartbeat while rank 0 is followed.
    others = NodeBeats(ctx) if ctx.run.cluster_nodes else None
    heartbeat = Heartbeat(shell, run_dir, ctx.run.options.watchdog_grace, others)
    lost = LostNodes(ctx) if ctx.run.cluster_nodes else None  # a lost node fails it at once
    heartbeat.beat(force=True)
    d, n = shlex.quote(run_dir), shlex.quote(name)
    # tail streams the log; the loop ends it once the exit file shows (or the job is
    # gone; the final SFTP read below catches what tail had not sent yet). Not
    # `tail --pid`: a pod's PID 1 may never reap the job, and a zombie looks alive.
    launch = (
        _launch(run_dir, name, start)
        if start is not None
        else (f"cd {d} || exit 1; pid=$(cat {n}.pid 2>/dev/null || echo 1)\n")
    )
    tail = launch + (
        f"tail -c +{follower.offset + 1} -F {n}.log 2>/dev/null & t=$!; "
        f'while [ ! -f {n}.exit ] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; '
        "kill $t 2>/dev/null; wait $t 2>/dev/null; exit 0"
    )
    for chunk in shell.stream(tail):
        _between_reads(ctx, heartbeat, name, lost)
        if chunk:
            follower.feed(chunk, final=False)
    log = f"{run_dir}/{name}.log"
    while (exit_code := job_exit_code(shell, run_dir, name)) is None:
        # tail ended but the job runs on (tail died on the pod): follow by polling.
        _between_reads(ctx, heartbeat, name, lost)
        follower.reread(shell.read_from(log, follower.offset, _READ_LIMIT), final=False)
        time.sleep(0.5)
    while True:  # whatever tail may have missed, to the last byte
        chunk = shell.read_from(log, follower.offset, _READ_LIMIT)
        follower.reread(chunk, final=len(chunk) < _READ_LIMIT)
        if len(chunk) < _READ_LIMIT:
            break
    heartbeat.beat(force=True)  # the grace period starts after our last read
    return JobOutcome(exit_code=exit_code, tail=follower.tail)


def _between_reads(
    ctx: StepContext, heartbeat: Heartbeat, name: str, lost: LostNodes | None
) -> None:
    ctx.check_cancelled()
    ctx.check_deadline(f"The {name} job")
    check_run_limit(ctx, f"The {name} job")
    heartbeat.beat()
    if lost is not None:
        lost(name)


class _Follower:
    """Turns log bytes into printed lines, the local copy and recorded offsets."""

    def __init__(
        self,
        ctx: StepContext,
        name: str,
        stage: str,
        local: Path,
        position: LogPosition,
    ) -> None:
        self.ctx, self.name, self.stage, self.local = ctx, name, stage, local
        self.position = position
        self.splitter = _LineSplitter()
        self.tail: list[str] = []

    @property
    def offset(self) -> int:
        """Bytes of the remote log handled so far (partial lines not included)."""
        return self.position.offset

    def reread(self, chunk: bytes, *, final: bool) -> None:
        """Feed bytes read again from ``offset``: any held partial line is in them."""
        self.splitter.pending = b""
        self.feed(chunk, final=final)

    def feed(self, chunk: bytes, *, final: bool) -> None:
        buffered = len(self.splitter.pending) + len(chunk)
        if final and chunk and not chunk.endswith((b"\n", b"\r")):
            chunk += b"\n"  # the job has ended: its last line will never be finished
        items, consumed = self.splitter.feed(chunk)
        consumed = min(consumed, buffered)
        if final:
            self.splitter.pending = b""
        shown: list[str] = []
        for text, is_progress in items:
            if is_progress:
                _progress(self.ctx, self.stage, text)
            elif text.strip():
                shown.append(text)
        if not consumed:
            return
        with open(self.local, "ab") as handle:
            for text in shown:
                handle.write(f"[{self.stage}] {text}\n".encode())
        # Shown before the offset is saved: a process killed in between shows these
        # lines again on resume (at least once), where the other order would lose them.
        for text in shown:
            self.ctx.output.line(self.stage, text)
            self.tail.append(text)
        del self.tail[:-200]
        self.position = LogPosition(self.offset + consumed, self.local.stat().st_size)
        remote = self.ctx.run.remote
        self.ctx.save(remote=replace(remote, logs={**remote.logs, self.name: self.position}))


def _progress(ctx: StepContext, stage: str, text: str) -> None:
    """A tqdm update (``12/40 [...]``) becomes the output's progress; the output paces it."""
    match = _TQDM.search(text)
    if match is not None:
        ctx.output.progress(stage, int(match.group(1)), int(match.group(2)), text.strip())


def _align_local_copy(path: Path, recorded: int | None) -> None:
    """Cut the local copy back to what the database says was written (a crash may
    have left lines after the last recorded offset; they will be read again)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
    elif recorded is not None and path.stat().st_size > recorded:
        with open(path, "r+b") as handle:
            handle.truncate(recorded)

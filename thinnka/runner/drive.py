"""``Runner``: creates runs and drives them, step by step, through their state machine."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from thinnka.errors import (
    Cancelled,
    PodHeld,
    StateConflict,
    StoreError,
    ThinnkaError,
)
from thinnka.handlers.base import Handler
from thinnka.lease import (
    DEFAULT_LEASE_SECONDS,
    LeaseKeeper,
    make_owner_id,
    reserve_stop_note,
    take_lease_waiting,
)
from thinnka.logs import redact
from thinnka.machine import (
    FAIL_TRIGGER,
    RESTART_TRIGGER,
    Outcome,
    RunState,
    build_machine,
    next_transition,
)
from thinnka.options import RunOptions
from thinnka.reasons import Reason
from thinnka.runner.failure import crash_point, failure_reason
from thinnka.runner.store_down import StoppedRun, stop_without_store
from thinnka.services import LiveServices, Services
from thinnka.settings import Settings
from thinnka.step import Output, StepContext
from thinnka.store import RunRecord, Store

__all__ = ["Runner"]

logger = structlog.get_logger(__name__)


class _Model:
    """The object the transitions machine moves (state lives in the database)."""

    state: RunState


class Runner:
    """Creates runs and drives them; one instance per command."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        handlers: Mapping[str, Handler],
        output: Output,
        services: Services | None = None,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.settings = settings
        self.handlers = handlers  # read only; default_handlers() makes each on first use
        self.output = output
        self.services: Services = services or LiveServices(settings, store)
        self.owner = owner or make_owner_id()
        self.lease_seconds = lease_seconds
        self._run: RunRecord | None = None  # the run as last known (the store may fail)
        self._pods: set[str] = set()  # its pods as known in memory (the store may fail)
        self._clusters: set[str] = set()  # and its Instant Cluster (--nodes)

    # ------------------------------------------------------------------ API
    def create(
        self,
        options: RunOptions,
        *,
        plan: dict[str, object] | None = None,
        hub_model_id: str | None = None,
    ) -> RunRecord:
        """A new run in ``created``, leased to this runner from the first instant; with
        ``hub_model_id``, refused while another live run pushes there (``Store.create_run``)."""
        return self.store.create_run(
            options,
            owner=self.owner,
            lease_seconds=self.lease_seconds,
            plan=plan,
            hub_model_id=hub_model_id,
        )

    def drive(
        self,
        run_id: str,
        *,
        stop_at: RunState | None = None,
        wait_for_lease: bool = False,
        abandon: Callable[[RunRecord], ThinnkaError | None] | None = None,
        follow_restart: bool = True,
    ) -> RunRecord:
        """Advance ``run_id`` until it is terminated (or reaches ``stop_at``).

        A pod lost under the training is replaced (``thinnka.handlers.restart``); without
        ``follow_restart`` (``recover``) the drive stops once the new training started.

        Raises ``LeaseHeld`` when another live process drives it; with
        ``wait_for_lease`` (``resume``), a holder on another host is first given
        until its lease expires (see ``_wait_for_expiry``). A
        ``KeyboardInterrupt`` cancels the run, cleans up, and is re-raised.
        ``abandon`` (``recover``) is asked, once the lease is held, whether the run as it
        is now must be stopped, and with which error: asked only then, so that a process
        that loses the lease (or finds the run finished) records nothing it did not do.
        When the database fails, the run's pods are terminated anyway and a ``StoreError``
        says so (see ``_without_store``).
        """
        run = self._acquire(run_id, wait=wait_for_lease)
        reserve_stop_note(self.settings.state_dir, run_id)
        self._run, self._pods = run, {run.pod_id} if run.pod_id else set()
        self._clusters = {run.cluster_id} if run.cluster_id else set()
        interrupted: KeyboardInterrupt | None = None
        store_failed = False
        with (
            structlog.contextvars.bound_contextvars(run_id=run_id),
            LeaseKeeper(self.store, run_id, self.owner, self.lease_seconds) as heartbeat,
        ):
            try:
                stop = abandon(run) if abandon is not None else None
                if stop is not None and run.state not in (RunState.failed, RunState.terminated):
                    self.store.add_event(run.id, "abandoned", stop.message)
                    run = self._fail(run, stop)
                while True:
                    try:
                        run = self._advance(run, heartbeat, stop_at, follow_restart)
                        break
                    except KeyboardInterrupt as exc:
                        # Wherever the signal landed, in a step or between two of them.
                        run = self._interrupted(run_id, exc)
                        interrupted = exc
            except StoreError as exc:
                store_failed = True
                raise self._without_store(exc) from exc
            finally:
                if not store_failed:  # else the lease expires; the holder is gone by then
                    self.store.release_lease(run_id, self.owner)
        if interrupted is not None:
            raise interrupted
        return self.store.get(run_id)

    def _advance(
        self,
        run: RunRecord,
        heartbeat: LeaseKeeper,
        stop_at: RunState | None,
        follow_restart: bool = True,
    ) -> RunRecord:
        """Step until the run is final (or at ``stop_at``); a failing step fails the run."""
        while not run.state.is_final():
            self._run = run
            if run.pod_id:
                self._pods.add(run.pod_id)
            if run.cluster_id:
                self._clusters.add(run.cluster_id)
            if stop_at is not None and run.state is stop_at:
                break
            if heartbeat.lost:
                raise StateConflict(f"Lost the lease on run {run.id}; stopping.")
            if run.cancel_requested and run.state is not RunState.failed:
                run = self._fail(run, Cancelled("Run cancelled on request."))
                continue
            try:
                run = self._step(run, heartbeat)
            except (StateConflict, StoreError):
                raise  # nothing can be recorded for this run here
            except PodHeld as held:
                # Not a failed cleanup: the pod is kept on purpose (a model to push).
                # Said once: every `recover` pass of the hold would repeat it.
                said = self.store.events(run.id)
                if not any(e.kind == "pod_kept" for e in said):
                    self.store.add_event(run.id, "pod_kept", held.message)
                    self.output.event("pod_kept", held.message)
                break
            except ThinnkaError as exc:
                if run.state is RunState.failed:
                    self._cleanup_failed(run, exc)
                    break
                if run.state is RunState.pushed and not isinstance(exc, Cancelled):
                    self._defer_termination(run, exc)
                    break
                current = self.store.get(run.id)
                if (
                    current.state is RunState.training
                    and failure_reason(current, exc) is Reason.pod_lost
                ):
                    restarted, exc = self._restart(current, exc, heartbeat)
                    if restarted is not None:
                        run = restarted
                        if not follow_restart:
                            stop_at = RunState.training  # recover starts it, never follows it
                        continue
                run = self._fail(current, exc)
            except Exception as exc:  # a bug: still clean up the pod
                logger.exception("step crashed", state=run.state.value)
                error = ThinnkaError(f"Internal error: {exc!r}", reason=Reason.internal)
                if run.state is RunState.failed:
                    self._cleanup_failed(run, error)
                    break
                run = self._fail(self.store.get(run.id), error)
        return run

    def _interrupted(self, run_id: str, interrupt: KeyboardInterrupt) -> RunRecord:
        """Ctrl-C, SIGTERM or SIGHUP: cancel and clean up, or detach from a training."""
        state = self.store.get(run_id).state
        if state is RunState.failed or state.is_final():
            raise interrupt  # interrupted during cleanup: `recover` finishes it
        if state is RunState.training:  # the pod's watchdog guards it
            self.output.event(
                "detached",
                f"Detached; the training goes on. Follow it: thinnka logs -f "
                f"{run_id}; stop it: thinnka cancel {run_id}.",
            )
            raise interrupt
        self.output.event("interrupted", "Interrupted; cleaning up.")
        return self._fail(
            self.store.get(run_id),
            Cancelled("Interrupted by the user.", reason=Reason.interrupted),
        )

    def _without_store(self, error: StoreError) -> StoreError:
        """The database failed: see ``stop_without_store``. Returns the one line to show."""
        assert self._run is not None  # set by drive before anything can fail
        return stop_without_store(
            StoppedRun(self._run, sorted(self._pods), sorted(self._clusters)),
            error, services=self.services, settings=self.settings, output=self.output,
            owner=self.owner,
        )  # fmt: skip

    def _acquire(self, run_id: str, *, wait: bool = False) -> RunRecord:
        return take_lease_waiting(
            self.store, run_id, self.owner, seconds=self.lease_seconds, wait=wait,
            say=lambda message: self.output.event("lease_wait", message),
        )  # fmt: skip

    # ------------------------------------------------------------------ steps
    def _step(self, run: RunRecord, heartbeat: LeaseKeeper) -> RunRecord:
        transition = next_transition(run.state)
        if transition is None:  # pragma: no cover - the completeness test forbids it
            raise StateConflict(f"No way forward from {run.state.value}")
        handler = self.handlers[transition.trigger]
        ctx = self._context(run, handler.timeout_s(run), heartbeat)
        started = time.monotonic()
        crash_point(transition.trigger, "before")
        result = handler.run(ctx)
        if result.updates.get("pod_id"):
            self._pods.add(str(result.updates["pod_id"]))
        crash_point(transition.trigger, "after_call")
        model = _Model()
        build_machine(model, run.state)
        getattr(model, transition.trigger)()  # the machine validates the edge
        # The verified final push is the success: recorded with the push, so that a pod that
        # will not go away (Runpod failing its terminate) cannot turn it into a failure.
        succeeded = transition.source in (RunState.training, RunState.pushed)
        outcome = Outcome.succeeded if succeeded else None
        updated = self.store.transition(
            run.id,
            owner=self.owner,
            source=transition.source,
            dest=model.state,
            trigger=transition.trigger,
            message=result.message,
            updates=result.updates,
            outcome=outcome,
        )
        crash_point(transition.trigger, "after_write")
        logger.info(
            "transition",
            trigger=transition.trigger,
            src=transition.source.value,
            dst=updated.state.value,
            elapsed_s=round(time.monotonic() - started, 3),
        )
        return updated

    def _context(self, run: RunRecord, timeout_s: float, heartbeat: LeaseKeeper) -> StepContext:
        def check_cancelled() -> None:
            if heartbeat.lost:
                raise StateConflict(f"Lost the lease on run {run.id}; stopping.")
            if run.state is not RunState.failed and self.store.get(run.id).cancel_requested:
                raise Cancelled("Run cancelled on request.")

        return StepContext(
            run=run,
            settings=self.settings,
            services=self.services,
            output=self.output,
            deadline=time.monotonic() + timeout_s,
            record=lambda facts: self._record(run.id, facts),
            note=lambda kind, message: self.store.add_event(run.id, kind, message),
            check_cancelled=check_cancelled,
        )

    def _record(self, run_id: str, facts: Mapping[str, Any]) -> RunRecord:
        """A step's facts, written now; a pod id is known in memory before it is written."""
        if facts.get("pod_id"):
            self._pods.add(str(facts["pod_id"]))
        if facts.get("cluster_id"):
            self._clusters.add(str(facts["cluster_id"]))
        return self.store.record(run_id, owner=self.owner, updates=facts)

    def _fail(self, run: RunRecord, error: ThinnkaError) -> RunRecord:
        """Record the error and move to ``failed``; cleanup follows in the loop."""
        cancelled = isinstance(error, Cancelled)
        outcome = Outcome.cancelled if cancelled else Outcome.failed
        reason = Reason.cancelled if cancelled else failure_reason(run, error)
        detail = {"detail": str(error.reason)} if error.reason != reason else {}
        # A library's error text may quote a token (an "illegal header value"): never store it.
        message = redact(error.message, self.settings.secrets())
        self.output.event("error", message, reason=reason, **detail)
        return self.store.transition(
            run.id,
            owner=self.owner,
            source=run.state,
            dest=RunState.failed,
            trigger=FAIL_TRIGGER,
            message=message,
            updates={"error_message": message, "error_reason": str(reason)},
            outcome=outcome,
        )

    def _restart(
        self, run: RunRecord, error: ThinnkaError, heartbeat: LeaseKeeper
    ) -> tuple[RunRecord | None, ThinnkaError]:
        """The pod was lost under the training: fire ``restart`` (back to ``estimated``, a new
        pod resumes it) when ``restart_for`` plans one; else the error, saying why not."""
        from thinnka.handlers.restart import RESTART_TIMEOUT_S, restart_for

        if run.cancel_requested:
            return None, error
        planned, error = restart_for(self._context(run, RESTART_TIMEOUT_S, heartbeat), error)
        if planned is None:
            return None, error
        message = redact(planned.message, self.settings.secrets())
        self.output.event("restart", message, **planned.fields)
        updated = self.store.transition(
            run.id,
            owner=self.owner,
            source=RunState.training,
            dest=RunState.estimated,
            trigger=RESTART_TRIGGER,
            message=message,
            updates=planned.updates,
        )
        logger.info("transition", trigger=RESTART_TRIGGER, src="training", dst="estimated")
        return updated, error

    def _defer_termination(self, run: RunRecord, error: ThinnkaError) -> None:
        """The model is pushed but the pod would not go (the terminate step retried it with
        backoff): the run stays ``pushed`` and ``succeeded``, and says who ends the pod."""
        grace = run.options.watchdog_grace
        message = (
            f"The model is pushed, but pod {run.pod_id} could not be terminated yet "
            f"({error.message}). `thinnka recover` retries the termination; the pod's watchdog "
            f"ends the pod itself {grace:.0f} s after nobody follows the run."
        )
        message = redact(message, self.settings.secrets())
        self.store.add_event(run.id, "terminate_deferred", message)
        self.output.event("terminate_deferred", message)

    def _cleanup_failed(self, run: RunRecord, error: ThinnkaError) -> None:
        """Cleanup itself failed: leave the run ``failed`` for ``recover`` to retry."""
        message = f"Cleanup failed, will be retried by `thinnka recover`: {error.message}"
        self.store.add_event(run.id, "cleanup_error", message)
        self.output.event("cleanup_error", message)

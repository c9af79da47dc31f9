"""Events of a run, written to the outbox first, delivered to a webhook and Discord.

``Notifier`` wraps the terminal's output: everything still reaches the
terminal, and every event is also written to the database's outbox (the
state changes themselves are written there by the store, in the transaction
of the move). A ``Deliverer`` thread sends them on, so a slow or failing
endpoint never slows the run or its log stream, and a crash loses nothing:
the next ``resume`` or ``recover`` delivers what is left.

Training progress becomes one ``progress`` event per interval (30 s by
default) carrying the latest numbers: step, total steps, epoch, loss or
reward and the ETA, parsed from the trainer's progress bar and logged dicts;
those dicts are also stored as the run's metrics.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from thinnka.errors import StoreError
from thinnka.events.delivery import Deliverer, DeliveryPolicy
from thinnka.events.metrics import (
    LoggingSteps,
    ingest_metrics,
    is_step_bar,
    parse_eval_scores,
    parse_metrics,
)
from thinnka.events.sinks import Sink, discord_text, sink_secrets

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.settings import Settings
    from thinnka.store import Store

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL_S", "Notifier", "deliver_backlog", "discord_text",
    "logging_first_step", "logging_steps",
]  # fmt: skip

logger = structlog.get_logger(__name__)

DEFAULT_PROGRESS_INTERVAL_S = 30.0
_TAIL_MARK = "\nLast output:\n"
_FINAL_EVENTS = frozenset({"done", "failed", "cancelled"})
# Events whose receivers want the facts the run record holds by then.
_RUN_FACTS = frozenset({"pod_created", "pushed", "pod_terminated"})
# tqdm's "[elapsed<remaining, rate]": the remaining part, as [[H:]MM:]SS.
_REMAINING = re.compile(r"<((?:\d+:)?\d+:\d+)")
_SCALARS = (str, int, float, bool)


class _Terminal(Protocol):
    def event(self, name: str, message: str, **fields: Any) -> None: ...

    def line(self, stage: str, text: str) -> None: ...

    def progress(self, stage: str, done: int, total: int, text: str) -> None: ...


def logging_steps(options: RunOptions) -> LoggingSteps:
    """The trainer's ``logging_steps`` (the recipes' default is 1) and, for a fraction,
    the run's total steps when the options fix them (``--set max_steps`` wins over
    ``--max-steps``, as in the rendered recipe)."""
    overrides = dict(options.overrides)
    try:
        value = float(overrides.get("logging_steps", "1"))
    except ValueError:
        value = 1.0
    if not math.isfinite(value) or value <= 0:
        value = 1.0  # transformers refuses it: no logged dicts to number
    try:
        total = int(float(overrides.get("max_steps", options.max_steps)))
    except (ValueError, OverflowError):  # "null": the trainer's default, a run of epochs
        total = -1
    return LoggingSteps(value, total if total > 0 else None)


def logging_first_step(overrides: tuple[tuple[str, str], ...]) -> bool:
    """The trainer's ``logging_first_step`` (true in all of thinnka's recipes)."""
    return dict(overrides).get("logging_first_step", "true").strip().lower() not in {
        "false", "0", "no", "off",
    }  # fmt: skip


def _eta_seconds(text: str) -> float | None:
    match = _REMAINING.search(text)
    if match is None:
        return None
    seconds = 0.0
    for part in match.group(1).split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


class Notifier:
    """The terminal's output plus the outbox; see the module docstring."""

    def __init__(
        self,
        inner: _Terminal,
        *,
        store: Store | None,
        sinks: list[Sink],
        repo_id: str,
        secrets: list[str],
        run_id: str | None = None,
        log_path: Callable[[str], Path] | None = None,
        logging: LoggingSteps | None = None,
        first_step_logged: bool = True,
        hub_endpoint: str | None = None,
        progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        deliver: bool = True,
    ) -> None:
        self.inner, self.store, self.sinks, self.repo_id = inner, store, sinks, repo_id
        self._secrets = [s for s in [*secrets, *sink_secrets(sinks)] if s]
        if store is not None:
            store.outbox.secrets[:] = sorted({*store.outbox.secrets, *self._secrets})
        self._log_path, self._first_logged = log_path, first_step_logged
        self._logging = logging or LoggingSteps()
        self._hub = (hub_endpoint or "https://huggingface.co").rstrip("/")
        self._interval, self._policy, self._clock = progress_interval_s, policy, clock
        self._deliverer: Deliverer | None = None
        self._deliver = deliver  # False: events go to the outbox only (recover delivers later)
        self._run_id: str | None = None
        self._latest: dict[str, Any] = {}
        self._unsent = False
        self._last_sent: float | None = None
        self._store_down = False  # said once: every later event would say it again
        if run_id is not None:
            self.run_id = run_id

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @run_id.setter
    def run_id(self, run_id: str | None) -> None:
        """Attach to a run: catch up its metrics, start delivering its outbox."""
        self._run_id = run_id
        if run_id is None or self.store is None:
            return
        attach = getattr(self.inner, "attach", None)
        if attach is not None:
            attach(self.store, run_id)
        self._ingest()
        if self.sinks and self._deliver and self._deliverer is None:
            self._deliverer = Deliverer(
                self.store.outbox, self.sinks, lambda: [run_id], policy=self._policy
            )
            self._deliverer.start()
            self._deliverer.wake()  # a resumed run may have events a dead process left

    # ------------------------------------------------------------ Output
    def event(self, name: str, message: str, **fields: Any) -> None:
        self.inner.event(name, message, **fields)
        extra: dict[str, Any] = {
            k: v for k, v in fields.items() if v is None or isinstance(v, _SCALARS)
        }
        if _TAIL_MARK in message:
            message, _, tail = message.partition(_TAIL_MARK)
            extra["tail"] = tail.splitlines()[-30:]
        try:
            if name in _FINAL_EVENTS:
                extra.update(self._final_facts())
            elif name in _RUN_FACTS:
                extra.update(self._run_facts(name))
        except StoreError as exc:  # the terminal has the event; the run's record cannot
            self._store_failed(name, exc)
            return
        self._write(name, message, fields.get("stage"), extra)

    def line(self, stage: str, text: str) -> None:
        self.inner.line(stage, text)
        values = parse_metrics(text)
        if values is None:
            if parse_eval_scores(text) is not None:
                self._ingest()  # the held-out scores, measured before, during or after
            return
        self._ingest()
        for key in ("epoch", "loss", "reward"):
            if key in values:
                self._latest[key] = values[key]
        self._latest["stage"] = stage
        self._progress_changed(final=False)

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        self.inner.progress(stage, done, total, text)
        if not is_step_bar(text):
            return  # loading weights, mapping a dataset: not training steps
        waiting = self._logging.every(self._latest.get("total_steps")) is None
        self._latest.update(stage=stage, step=done, total_steps=total)
        if waiting:
            self._ingest()  # dicts logged before the total was known get their steps now
        eta = _eta_seconds(text)
        if eta is not None:
            self._latest["eta_s"] = eta
        self._progress_changed(final=done >= total)

    def close(self, timeout: float = 15.0) -> None:
        """Send the latest progress, then deliver what is pending for at most ``timeout``."""
        if self._unsent:
            self._send_progress()
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            closer()
        if self._deliverer is not None:
            self._deliverer.close(timeout)
            self._deliverer = None

    # ------------------------------------------------------------ helpers
    def _progress_changed(self, *, final: bool) -> None:
        now = self._clock()
        if final or self._last_sent is None or now - self._last_sent >= self._interval:
            self._send_progress()
        else:
            self._unsent = True

    def _send_progress(self) -> None:
        self._last_sent, self._unsent = self._clock(), False
        facts = {k: self._latest.get(k) for k in ("step", "total_steps", "epoch", "eta_s")}
        for key in ("loss", "reward"):
            if key in self._latest:
                facts[key] = self._latest[key]
        step, total = facts["step"], facts["total_steps"]
        message = f"Step {step}/{total}." if step is not None else "Training."
        self._write("progress", message, self._latest.get("stage"), facts)

    def _final_facts(self) -> dict[str, Any]:
        if self.store is None or self._run_id is None:
            return {}
        run = self.store.get(self._run_id)
        end = run.ended_at or run.updated_at
        facts: dict[str, Any] = {"duration_s": round((end - run.created_at).total_seconds(), 1)}
        if run.hub_model_id and run.outcome is not None and run.outcome.value == "succeeded":
            facts["hub_url"] = f"{self._hub}/{run.hub_model_id}"
        scores = self.store.scores.of(run.id)
        if scores:  # before/after on the eval split: what a receiver compares runs by
            facts["scores"] = [score.to_json() for score in scores]
        return facts

    def _run_facts(self, name: str) -> dict[str, Any]:
        if self.store is None or self._run_id is None:
            return {}
        run = self.store.get(self._run_id)
        if name == "pushed" and run.hub_model_id:
            return {"hub_url": f"{self._hub}/{run.hub_model_id}"}
        return {"pod_id": run.pod_id, "gpu_type": run.gpu_type, "gpu_count": run.gpu_count,
                "cost_per_hr": run.cost_per_hr}  # fmt: skip

    def _write(self, event: str, message: str, stage: Any, extra: dict[str, Any]) -> None:
        if self.store is None or self._run_id is None:
            return
        try:
            self.store.outbox.add(self._run_id, event, message, stage=stage, extra=extra)
        except StoreError as exc:
            self._store_failed(event, exc)
            return
        except Exception:  # the run goes on; the terminal and the run's events have it
            logger.exception("could not write an event to the outbox", kind=event)
            return
        if self._deliverer is not None:
            self._deliverer.wake()

    def _store_failed(self, kind: str, error: StoreError, what: str = "an event") -> None:
        """The database is unavailable (the runner deals with that): logged once, without
        a traceback, and the terminal still shows every event."""
        if not self._store_down:
            self._store_down = True
            logger.error(f"could not write {what} to the database", kind=kind, error=error.cause)

    def _ingest(self) -> None:
        if self.store is None or self._run_id is None or self._log_path is None:
            return
        every = self._logging.every(self._latest.get("total_steps"))
        if every is None:
            return  # which step a dict is waits for the trainer's bar to show the total
        try:
            ingest_metrics(
                self.store.metrics, self._run_id, self._log_path(self._run_id), every=every,
                first_step_logged=self._first_logged,
            )  # fmt: skip
        except StoreError as exc:
            self._store_failed("metrics", exc, "metrics")
        except Exception:
            logger.exception("could not store metrics")


def deliver_backlog(
    store: Store, settings: Settings, *, timeout: float = 30.0, policy: DeliveryPolicy | None = None
) -> int:
    """Deliver every run's pending events (``recover``: runs whose process died).

    Bounded by ``timeout`` overall; what is left stays pending. Returns how
    many runs still have pending events.
    """
    from thinnka.events.sinks import sinks_for

    deadline = time.monotonic() + timeout
    run_ids = sorted(
        {r for sink in ("webhook", "discord") for r in store.outbox.runs_with_pending(sink)}
    )
    left = 0
    for run_id in run_ids:
        run = store.get(run_id)
        sinks = sinks_for(settings, run.options)
        remaining = deadline - time.monotonic()
        if not sinks or run.lease_live():
            continue  # nowhere to send, or its live process delivers them itself
        store.outbox.secrets[:] = sorted({*store.outbox.secrets, *sink_secrets(sinks)})
        deliverer = Deliverer(store.outbox, sinks, functools.partial(list, [run_id]), policy=policy)
        if remaining <= 0 or not deliverer.deliver(remaining):
            left += 1
    return left

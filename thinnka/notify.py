"""Progress to a JSON webhook and to Discord, beside the terminal.

``Notifier`` wraps the terminal's ``Output``: every event also goes to the
configured webhook (``{project, run_id, repo_id, event, timestamp, message,
stage?}``) and to Discord (one text line, at most 2000 characters). Remote
output lines become ``training_progress`` events, at most one a second and
always the latest one. Delivery happens on a background thread with a
bounded queue; a slow or failing endpoint never slows the run down. 429 and
5xx answers are retried a few times (Discord's ``retry_after`` honoured),
other failures are logged and dropped. Secrets are scrubbed from payloads.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog

from thinnka.logs import redact
from thinnka.records import Output

__all__ = ["Notifier", "discord_text"]

logger = structlog.get_logger(__name__)

PROJECT = "thinnka"
_QUEUE_SIZE = 1000
_ATTEMPTS = 3
_DISCORD_LIMIT = 2000


@dataclass(frozen=True)
class _Delivery:
    url: str
    body: dict[str, Any]


def discord_text(payload: dict[str, Any]) -> str:
    """``[thinnka | repo] event (stage): message``, cut to Discord's 2000 characters."""
    head = f"[{PROJECT} | {payload.get('repo_id') or '?'}] {payload['event']}"
    if payload.get("stage"):
        head += f" ({payload['stage']})"
    text = f"{head}: {payload.get('message', '')}".replace("```", "'''")
    if len(text) > _DISCORD_LIMIT:
        # Keep the end: for an error, the last lines of a traceback say the most.
        text = text[:200] + "\n…\n" + text[-(_DISCORD_LIMIT - 203) :]
    return text


class Notifier:
    """An ``Output`` that also posts events to a webhook and Discord."""

    def __init__(
        self,
        inner: Output,
        *,
        webhook_url: str | None,
        discord_url: str | None,
        repo_id: str,
        secrets: list[str],
        run_id: str | None = None,
    ) -> None:
        self.inner = inner
        self.webhook_url, self.discord_url = webhook_url, discord_url
        self.repo_id, self.run_id = repo_id, run_id
        self._secrets = secrets
        self._queue: queue.Queue[_Delivery | None] = queue.Queue(maxsize=_QUEUE_SIZE)
        self._dropped = 0
        self._last_progress = 0.0
        self._pending_line: tuple[str, str] | None = None
        self._thread: threading.Thread | None = None
        if webhook_url or discord_url:
            self._thread = threading.Thread(target=self._deliver_all, name="notify", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ Output
    def event(self, name: str, message: str, **fields: Any) -> None:
        self.inner.event(name, message, **fields)
        self._send(name, message, fields.get("stage"))

    def line(self, stage: str, text: str) -> None:
        self.inner.line(stage, text)
        self._pending_line = (stage, text)
        now = time.monotonic()
        if now - self._last_progress >= 1.0:
            self._last_progress = now
            self._send("training_progress", text, stage)
            self._pending_line = None

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        self.inner.progress(stage, done, total, text)

    def close(self, timeout: float = 5.0) -> None:
        """Send the last progress line, then wait (bounded) for the queue to drain."""
        if self._pending_line is not None:
            stage, text = self._pending_line
            self._send("training_progress", text, stage)
            self._pending_line = None
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            closer()
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout=timeout)
        if self._dropped:
            logger.warning("notifications dropped", count=self._dropped)

    # ------------------------------------------------------------ delivery
    def _send(self, event: str, message: str, stage: str | None) -> None:
        if self._thread is None:
            return
        payload: dict[str, Any] = {
            "project": PROJECT,
            "run_id": self.run_id,
            "repo_id": self.repo_id,
            "event": event,
            "timestamp": time.time(),
            "message": redact(message, self._secrets),
        }
        if stage:
            payload["stage"] = stage
        deliveries = []
        if self.webhook_url:
            deliveries.append(_Delivery(self.webhook_url, payload))
        if self.discord_url:
            deliveries.append(_Delivery(self.discord_url, {"content": discord_text(payload)}))
        for delivery in deliveries:
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                self._dropped += 1

    def _deliver_all(self) -> None:
        import httpx

        with httpx.Client(timeout=10.0, headers={"User-Agent": f"{PROJECT}-notify"}) as client:
            while (delivery := self._queue.get()) is not None:
                self._deliver(client, delivery)

    def _deliver(self, client: Any, delivery: _Delivery) -> None:
        import httpx

        for attempt in range(1, _ATTEMPTS + 1):
            try:
                response = client.post(delivery.url, json=delivery.body)
            except httpx.HTTPError as exc:
                logger.warning("notification failed", error=type(exc).__name__, attempt=attempt)
                time.sleep(0.5 * attempt)
                continue
            if response.status_code < 300:
                return
            if response.status_code == 429 or response.status_code >= 500:
                time.sleep(min(_retry_after(response), 5.0) or 0.5 * attempt)
                continue
            logger.warning("notification refused", status=response.status_code)
            return


def _retry_after(response: Any) -> float:
    try:
        return float(response.json().get("retry_after", 0))
    except (ValueError, AttributeError):
        try:
            return float(response.headers.get("Retry-After", 0))
        except ValueError:
            return 0.0

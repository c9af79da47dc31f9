"""Where events go: a JSON webhook and Discord, and what each of them is sent.

A webhook receives the stored payload as it is. Discord receives readable
text of at most 2000 characters: failures end with the last output lines in
a code block (backticks in them neutralised so they cannot close it), the
final message names the model's URL, the duration and the cost. Mentions are
switched off, so a log line saying ``@everyone`` pings nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.settings import Settings

__all__ = [
    "DISCORD_LIMIT",
    "Sink",
    "discord_text",
    "sink_names",
    "sink_secrets",
    "sinks_for",
    "unreachable_flag_sinks",
]

DISCORD_LIMIT = 2000
WEBHOOK, DISCORD = "webhook", "discord"
_FINAL_EVENTS = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class Sink:
    """A delivery target. ``url`` is a secret (Discord's carries its token): never shown."""

    name: str
    url: str

    def __repr__(self) -> str:
        return f"Sink({self.name!r})"

    def body(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        if self.name == DISCORD:
            return {"content": discord_text(payload), "allowed_mentions": {"parse": []}}
        return dict(payload)


def sinks_for(settings: Settings, options: RunOptions) -> list[Sink]:
    """The run's sinks: its own flags first, else the settings (.env)."""
    found = []
    webhook = options.progress_url or settings.progress_webhook_url
    discord = options.discord_webhook_url or settings.discord_webhook_url
    if webhook:
        found.append(Sink(WEBHOOK, webhook))
    if discord:
        found.append(Sink(DISCORD, discord))
    return found


def unreachable_flag_sinks(settings: Settings, options: RunOptions) -> list[str]:
    """Sinks the run was given by flag whose URL this process does not know.

    The URLs are never stored (they are secrets), so a later ``resume`` or
    ``recover`` delivers to them only when told again (the same flag, or the
    setting in .env); meanwhile their events wait in the outbox, counted.
    """
    known = {sink.name for sink in sinks_for(settings, options)}
    return [name for name in options.flag_sinks if name not in known]


def sink_names(settings: Settings, options: RunOptions) -> list[str]:
    """Every sink the run's events are kept for: configured here, or given by flag."""
    names = [sink.name for sink in sinks_for(settings, options)]
    return names + [name for name in options.flag_sinks if name not in names]


def sink_secrets(sinks: list[Sink]) -> list[str]:
    """Each URL and each of its path and query parts long enough to be a token."""
    found: list[str] = []
    for sink in sinks:
        found.append(sink.url)
        parts = urlsplit(sink.url)
        found += [p for p in parts.path.split("/") if len(p) >= 16]
        found += [p.partition("=")[2] for p in parts.query.split("&") if len(p) >= 16]
    return [value for value in found if value]


def _neutralise(text: str) -> str:
    # A modifier letter grave (U+02CB) looks like a backtick but closes no code block.
    return text.replace("`", "\u02cb")


def _duration_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _headline(payload: Mapping[str, Any]) -> str:
    where = " · ".join(str(p) for p in (payload.get("repo_id"), payload.get("run_id")) if p)
    event = str(payload.get("event", ""))
    if event == "state":
        title = f"state: {payload.get('state')}"
    elif event == "progress":
        title = "progress"
    else:
        title = event
    if payload.get("stage") and event != "progress":
        title += f" ({payload['stage']})"
    return f"**[{where}] {title}**"


def _progress_text(payload: Mapping[str, Any]) -> str:
    parts = []
    step, total = payload.get("step"), payload.get("total_steps")
    if step is not None:
        parts.append(f"step {step}/{total}" if total else f"step {step}")
        if total:
            parts[-1] += f" ({100 * int(step) // max(1, int(total))}%)"
    for key in ("loss", "reward"):
        if payload.get(key) is not None:
            parts.append(f"{key} {float(payload[key]):.4g}")
    if payload.get("epoch") is not None:
        parts.append(f"epoch {float(payload['epoch']):.2f}")
    if payload.get("eta_s") is not None:
        parts.append(f"ETA {_duration_text(float(payload['eta_s']))}")
    parts.append(f"${float(payload.get('cost_usd') or 0):.2f} so far")
    return " · ".join(parts)


def _final_text(payload: Mapping[str, Any]) -> str:
    lines = [str(payload.get("message", ""))]
    if payload.get("hub_url"):
        lines.append(f"model: {payload['hub_url']}")
    if payload.get("duration_s") is not None:
        lines.append(f"duration: {_duration_text(float(payload['duration_s']))}")
    lines.append(f"cost: ${float(payload.get('cost_usd') or 0):.4f}")
    for score in payload.get("scores") or []:
        lines.append(_score_text(score))
    return "\n".join(lines)


def _score_text(score: Mapping[str, Any]) -> str:
    """``eval: accuracy_reward 0.31 → 0.58 (200 held-out rows)``."""

    def shown(value: Any) -> str:
        return "-" if value is None else f"{float(value):.4g}"

    split = f" ({score.get('split')})" if score.get("split") else ""
    change = f"{shown(score.get('before'))} → {shown(score.get('after'))}"
    return f"eval: {score.get('name')} {change}{split}"


def discord_text(payload: Mapping[str, Any]) -> str:
    """One readable Discord message (≤ 2000 characters) for a webhook payload."""
    event = payload.get("event")
    if event == "progress":
        body = _progress_text(payload)
    elif event in _FINAL_EVENTS:
        body = _final_text(payload)
    else:
        body = str(payload.get("message") or "")
    text = _headline(payload) + "\n" + body.replace("```", "'''")
    if len(text) > DISCORD_LIMIT - 200:
        text = text[: DISCORD_LIMIT - 203] + "…"
    tail = payload.get("tail")
    if tail:
        lines = tail if isinstance(tail, list) else str(tail).splitlines()
        room = DISCORD_LIMIT - len(text) - len("\n```\n\n```")
        block = _neutralise("\n".join(str(line) for line in lines))
        if len(block) > room:
            block = "…" + block[-(room - 1) :]  # keep the end: a traceback's last lines
        text += f"\n```\n{block}\n```"
    return text[:DISCORD_LIMIT]

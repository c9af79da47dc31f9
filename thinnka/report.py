"""``thinnka report``: one self-contained HTML page about a run.

Summary, timeline of states, cost, the plan (GPU, memory estimate) and a
plot of every metric against step. Everything is inline (CSS in a style
element, plots as SVG): no script, stylesheet, font or image is fetched, so
the file can be mailed or opened offline. Every value is HTML-escaped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ReportData", "render_report", "report_path", "svg_plot", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#1d232b;background:#fff;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #dde2e8;padding-bottom:.3rem}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.25rem .8rem .25rem 0;
text-align:left;vertical-align:top}th{color:#5a6573;font-weight:600}
.ok{color:#137a3a}.bad{color:#b3261e}.muted{color:#5a6573}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}
figure{margin:0;border:1px solid #dde2e8;border-radius:6px;padding:.5rem}
figcaption{font-size:.85rem;font-weight:600;margin-bottom:.2rem}
pre{background:#f4f6f8;padding:.6rem;overflow-x:auto;font-size:.8rem}
"""


@dataclass(frozen=True)
class ReportData:
    """What the page shows; plain values, gathered by the caller from the store."""

    run: dict[str, Any]  # run_summary(..., events=True)
    series: dict[str, list[tuple[int, float]]]
    generated_at: dt.datetime


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float) -> str:
    return f"{value:.4g}"


def svg_plot(points: Sequence[tuple[int, float]], *, width: int = 320, height: int = 160) -> str:
    """A line plot of (step, value) with its axes' ranges, as inline SVG."""
    left, right, top, bottom = 46, 8, 8, 22
    steps = [float(s) for s, _ in points]
    values = [v for _, v in points]
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1 if y0 == 0 else y0 * 0.9, y1 + 1 if y1 == 0 else y1 * 1.1
        y0, y1 = min(y0, y1), max(y0, y1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(step: float) -> float:
        return left + (step - x0) / (x1 - x0) * plot_w

    def y(value: float) -> float:
        return top + (1 - (value - y0) / (y1 - y0)) * plot_h

    path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(steps, values, strict=True))
    dots = "".join(
        f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="2.2" fill="#2563eb"/>'
        for s, v in zip(steps, values, strict=True)
    ) if len(points) <= 60 else ""  # fmt: skip
    return (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#f8fafc" '
        'stroke="#dde2e8"/>'
        f'<polyline points="{path}" fill="none" stroke="#2563eb" stroke-width="1.8"/>{dots}'
        f'<text x="{left - 4}" y="{top + 9}" font-size="10" text-anchor="end">{_num(y1)}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">'
        f"{_num(y0)}</text>"
        f'<text x="{left}" y="{height - 6}" font-size="10">{int(x0)}</text>'
        f'<text x="{left + plot_w}" y="{height - 6}" font-size="10" text-anchor="end">'
        f"step {int(x1)}</text></svg>"
    )


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs if v not in
                   (None, ""))  # fmt: skip


def _run_duration(run: dict[str, Any]) -> str | None:
    start = dt.datetime.fromisoformat(run["created_at"])
    end = dt.datetime.fromisoformat(run["ended_at"]) if run.get("ended_at") else None
    if end is None:
        return None
    minutes, seconds = divmod(int((end - start).total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s"


def _summary(run: dict[str, Any]) -> str:
    outcome = run.get("outcome") or run["state"]
    css = "ok" if outcome == "succeeded" else "bad" if outcome in ("failed", "cancelled") else ""
    pairs = [
        ("state", run["state"]), ("model", run["repo_id"]), ("pushed to", run.get("hub_model_id")),
        ("trainer", run.get("trainer")), ("mode", run.get("mode")),
        ("created", run["created_at"][:19].replace("T", " ")), ("duration", _run_duration(run)),
    ]  # fmt: skip
    error = run.get("error") or {}
    text = f'<p class="{css}"><strong>{_e(outcome)}</strong></p><table>{_rows(pairs)}</table>'
    if error:
        text += f"<h3>Error ({_e(error.get('reason'))})</h3><pre>{_e(error.get('message'))}</pre>"
    return text


def _timeline(run: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(e['at'][:19].replace('T', ' '))}</td><td>{_e(e.get('to') or e['kind'])}"
        f'</td><td class="muted">{_e(e["message"])}</td></tr>'
        for e in run.get("events", [])
        if e.get("to")
    )
    return f"<table><tr><th>at</th><th>state</th><th>message</th></tr>{rows}</table>"


def _cost_and_plan(run: dict[str, Any]) -> str:
    plan = run.get("plan") or {}
    memory = plan.get("memory") or {}
    gpu = f"{run.get('gpu_count') or ''}× {run['gpu_type']}" if run.get("gpu_type") else None
    cost = [
        ("GPU", gpu), ("pod", run.get("pod_id")),
        ("price", f"${run['cost_per_hr']:.2f}/hour" if run.get("cost_per_hr") else None),
        ("total cost", f"${run.get('cost_usd') or 0:.4f}"),
    ]  # fmt: skip
    breakdown = [(k, f"{v:.2f} GB") for k, v in (memory.get("breakdown_gb") or {}).items()]
    if memory.get("required_gb") is not None:
        breakdown.append(("needs per GPU", f"{memory['required_gb']:.1f} GB"))
    candidates = ", ".join(str(c.get("id")) for c in plan.get("candidates") or [])
    return (
        f"<h2>Cost</h2><table>{_rows(cost)}</table>"
        f"<h2>Plan</h2><table>{_rows(breakdown)}{_rows([('GPU candidates', candidates)])}"
        "</table>"
    )


def _evaluation(run: dict[str, Any], curves: dict[str, list[tuple[int, float]]]) -> str:
    """The local data sets, the eval scores before and after training, and each score
    over the steps (``--eval-points`` measurements on the way)."""
    data = [
        (f"{item['role']} data", f"{item['path']} ({item['rows']:,} rows, sha256 {item['sha256']})")
        for item in run.get("data") or []
    ]
    scores = run.get("scores") or []
    if not data and not scores and not curves:
        return ""
    text = "<h2>Data and evaluation</h2>"
    if data:
        text += f"<table>{_rows(data)}</table>"
    if scores:
        rows = "".join(
            f"<tr><td>{_e(s['name'])}</td><td>{_e(_score(s['before']))}</td>"
            f"<td>{_e(_score(s['after']))}</td><td>{_e(_change(s))}</td></tr>"
            for s in scores
        )
        text += (
            f'<p class="muted">On {_e(scores[0].get("split"))}: the base model before '
            "training, the trained model after.</p><table><tr><th>score</th><th>before</th>"
            f"<th>after</th><th>change</th></tr>{rows}</table>"
        )
    if curves:
        text += "<h3>Scores over the steps</h3>" + _plots(curves)
    return text


def _score(value: float | None) -> str:
    return "-" if value is None else _num(value)


def _change(score: dict[str, Any]) -> str:
    if score.get("before") is None or score.get("after") is None:
        return "-"
    return f"{score['after'] - score['before']:+.4g}"


def _main_first(item: tuple[str, Any]) -> tuple[int, str]:
    from thinnka.events.metrics import MAIN_METRICS

    name = item[0]
    return (MAIN_METRICS.index(name) if name in MAIN_METRICS else len(MAIN_METRICS), name)


def _plots(series: dict[str, list[tuple[int, float]]]) -> str:
    if not series:
        return '<p class="muted">No metrics were logged.</p>'
    figures = "".join(
        f'<figure><figcaption>{_e(name)} <span class="muted">last {_num(points[-1][1])}'
        f"</span></figcaption>{svg_plot(points)}</figure>"
        for name, points in sorted(series.items(), key=_main_first)
    )
    return f'<div class="plots">{figures}</div>'


def render_report(data: ReportData) -> str:
    from thinnka.events.metrics import EVAL_PREFIX

    run = data.run
    curves = {
        name.removeprefix(EVAL_PREFIX): points
        for name, points in data.series.items()
        if name.startswith(EVAL_PREFIX)
    }
    training = {n: p for n, p in data.series.items() if not n.startswith(EVAL_PREFIX)}
    title = f"thinnka run {run['id']} — {run['repo_id']}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="muted">Report made {_e(data.generated_at.isoformat(timespec="seconds"))}</p>'
        f"<h2>Summary</h2>{_summary(run)}"
        f"<h2>Timeline</h2>{_timeline(run)}"
        f"{_cost_and_plan(run)}"
        f"{_evaluation(run, curves)}"
        f"<h2>Metrics</h2>{_plots(training)}"
        "</body></html>\n"
    )


def report_path(output: str | None, default: Path, run_id: str) -> Path:
    """Where ``--output`` asks the page to go: a file, or ``report-RUN.html`` in a folder."""
    from thinnka.errors import ConfigError

    if not output:
        return default
    target = Path(output).expanduser()
    if target.is_dir():
        return target / f"report-{run_id}.html"
    if not target.parent.is_dir():
        raise ConfigError(f"--output {output!r}: folder {str(target.parent)!r} does not exist.")
    return target


def write_report(target: Path, page: str) -> None:
    """Write the page whole or not at all: a full disk or a read-only place is one line
    naming it (exit 2), and leaves no half-written page behind.

    A new or regular file is written beside itself and renamed over; anything else that
    exists (``/dev/stdout``, a FIFO) is written to directly.
    """
    import os
    import tempfile

    from thinnka.errors import ConfigError

    data = page.encode("utf-8")
    temporary: str | None = None
    try:
        if target.exists() and not target.is_file():
            with open(target, "wb") as handle:
                handle.write(data)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; a report is meant to be shared
        os.replace(temporary, target)
        temporary = None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"Cannot write the report to {target} ({why}); choose another place with --output."
        ) from None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

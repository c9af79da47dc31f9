"""Small text curves of a run's metrics (``thinnka show``)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["curve_lines", "sparkline"]

_BARS = "▁▂▃▄▅▆▇█"


def _buckets(values: Sequence[float], width: int) -> list[float]:
    """At most ``width`` points: the mean of each equal slice of ``values``."""
    if len(values) <= width:
        return list(values)
    out = []
    for i in range(width):
        part = values[i * len(values) // width : (i + 1) * len(values) // width]
        out.append(sum(part) / len(part))
    return out


def sparkline(values: Sequence[float], width: int = 40) -> str:
    points = _buckets(values, width)
    if not points:
        return ""
    low, high = min(points), max(points)
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return _BARS[len(_BARS) // 2] * len(points)
    scale = (len(_BARS) - 1) / (high - low)
    return "".join(_BARS[round((v - low) * scale)] for v in points)


def curve_lines(
    series: dict[str, list[tuple[int, float]]], names: Sequence[str], width: int = 40
) -> list[str]:
    """``name  ▁▂▅█  first → last (min … max, N steps)`` for each metric in ``names`` logged."""
    lines = []
    for name in names:
        points = series.get(name)
        if not points:
            continue
        values = [value for _, value in points]
        lines.append(
            f"{name:24} {sparkline(values, width):{width}}  {values[0]:.4g} → {values[-1]:.4g}"
            f"  (min {min(values):.4g}, max {max(values):.4g}, {len(values)} steps)"
        )
    return lines

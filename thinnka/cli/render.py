"""Rich tables and text for the inspecting commands."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_run", "print_runs_table"]

_console = Console(highlight=False, soft_wrap=True)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def print_runs_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        _console.print("No runs.")
        return
    table = Table("id", "state", "outcome", "model", "gpu", "cost", "created")
    for row in rows:
        gpu = f"{row['gpu_count']}× {row['gpu_type']}" if row["gpu_type"] else "-"
        table.add_row(
            row["id"],
            row["state"],
            row["outcome"] or "-",
            row["repo_id"],
            gpu,
            _money(row["cost_usd"]),
            row["created_at"][:19].replace("T", " "),
        )
    _console.print(table)


def print_run(data: dict[str, Any]) -> None:
    _console.print(f"[bold]{data['id']}[/bold]  {data['state']}  {data['outcome'] or ''}")
    for label, key in (
        ("model", "repo_id"),
        ("push to", "hub_model_id"),
        ("trainer", "trainer"),
        ("mode", "mode"),
        ("pod", "pod_id"),
        ("gpu", "gpu_type"),
    ):
        if data.get(key):
            _console.print(f"  {label:9} {data[key]}")
    _console.print(f"  {'cost':9} {_money(data['cost_usd'])}")
    if data["error"]:
        _console.print(f"  [red]error[/red]     {data['error']['message']}")
    table = Table("at", "event", "from", "to", "message")
    for event in data["events"]:
        table.add_row(
            event["at"][:19].replace("T", " "),
            event["kind"],
            event["from"] or "",
            event["to"] or "",
            event["message"],
        )
    _console.print(table)

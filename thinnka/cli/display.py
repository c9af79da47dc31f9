"""Rich tables and text for the inspecting commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from thinnka.clients.runpod import GpuOffer
    from thinnka.preflight import Plan

__all__ = ["print_gpus", "print_plan", "print_run", "print_runs_table"]

_console = Console(highlight=False, soft_wrap=True)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _age(created_at: str) -> str:
    import datetime as dt

    seconds = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(created_at)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(0, seconds))}s"


def print_runs_table(rows: list[dict[str, Any]], *, score: str | None = None) -> None:
    """The runs; with ``score``, a column of that eval score (before → after)."""
    if not rows:
        _console.print("No runs.")
        return
    from thinnka.cli.scores import score_cell

    columns = ["id", "model", "mode", "state", "gpu", "cost", "age"]
    table = Table(*columns, *([score] if score else []))
    for row in rows:
        gpu = f"{row['gpu_count']}× {row['gpu_type']}" if row["gpu_type"] else "-"
        state = row["state"] + (f" ({_outcome(row)})" if row["outcome"] else "")
        table.add_row(
            row["id"],
            row["repo_id"],
            row["mode"],
            state,
            gpu,
            _money(row["cost_usd"]),
            _age(row["created_at"]),
            *([score_cell(row, score)] if score else []),
        )
    _console.print(table)


def _outcome(row: dict[str, Any]) -> str:
    """The outcome, with the failure reason where there is one: ``failed (pod_lost)``."""
    reason = (row.get("error") or {}).get("reason")
    return f"{row['outcome'] or '-'} ({reason})" if reason else row["outcome"] or "-"


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
    basis = f" ({data['cost_basis']})" if data.get("cost_basis") else ""
    _console.print(f"  {'cost':9} {_money(data['cost_usd'])}{basis}")
    if data.get("lease_owner"):
        _console.print(f"  {'driven by':9} host {data['lease_host']} ({data['lease_owner']})")
    if data["error"]:
        _console.print(f"  [red]error[/red]     {data['error']['message']}")
        _console.print(f"  {'reason':9} {data['error']['reason']}")
    if len(data.get("pods") or []) > 1:  # pods lost under the training, then the current one
        pods = Table("pod", "gpu", "$/hour", "cost", "ended")
        for pod in data["pods"]:
            price = "-" if pod["cost_per_hr"] is None else f"{pod['cost_per_hr']:.2f}"
            ended = (pod["ended_at"] or "")[:19].replace("T", " ") or pod["why"]
            pods.add_row(pod["pod_id"], pod["gpu_type"] or "", price,
                         _money(pod["cost_usd"]), ended)  # fmt: skip
        _console.print(pods)
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


def print_gpus(offers: list[GpuOffer]) -> None:
    table = Table("id", "name", "memory", "GPUs", "$/hour", "stock", "clouds")
    for offer in offers:
        price = "-" if offer.price_per_hour is None else f"{offer.price_per_hour:.2f}"
        table.add_row(
            offer.id,
            offer.display_name,
            f"{offer.memory_gb:g} GB",
            str(offer.gpu_count),
            price,
            offer.stock or "none",
            " then ".join(offer.clouds) or "-",
        )
    _console.print(table)


def print_plan(plan: Plan) -> None:
    import yaml

    data = plan.to_json()
    _console.print(f"[bold]Plan[/bold] {data['mode'].upper()} of {data['repo_id']} "
                   f"→ {data['hub_model_id']} ({data['trainer']})")  # fmt: skip
    _console.print(f"  parameters  {data['model']['parameters']:,}")
    _console.print(f"  training    {data['training']['summary']}", markup=False)
    memory = Table("memory per GPU", "GB", box=None)
    for label, value in data["memory"]["breakdown_gb"].items():
        memory.add_row(label, f"{value:.2f}")
    memory.add_row("[bold]needs[/bold]", f"[bold]{data['memory']['required_gb']:.1f}[/bold]")
    _console.print(memory)
    gpus = Table("#", "GPU", "memory", "$/hour", "stock", "clouds")
    for rank, offer in enumerate(data["candidates"], start=1):
        price = "-" if offer["price_per_hour"] is None else f"{offer['price_per_hour']:.2f}"
        gpus.add_row(str(rank), offer["id"], f"{offer['memory_gb']:g} GB", price,
                     offer["stock"] or "none",
                     " then ".join(offer.get("clouds") or []) or "-")  # fmt: skip
    _console.print(gpus)
    if cluster := data.get("cluster"):
        _print_cluster(cluster, data["memory"]["required_gb"])
    _console.print(
        f"  transformers  {data['transformers']['spec']}  ({data['transformers']['reason']})"
    )
    limits = data["limits"]
    cost = f", at most ${limits['max_cost']:g}" if limits["max_cost"] else ""
    _console.print(
        f"  limits  {limits['max_hours']:g} h ({limits['max_hours_source']}){cost}; "
        f"the pod ends itself {limits['watchdog_grace_s']:g} s after an unfollowed end "
        f"({limits['watchdog_orphan_grace_s']:g} s idle between jobs)",
        markup=False,
    )
    print_plan_data(data)
    ckpt = data.get("checkpoints") or {}
    if ckpt:
        place = "the Hub (last-checkpoint/)" if ckpt["where"] == "hub" else "the network volume"
        upload = f", about {ckpt['upload_s']:g} s to upload" if ckpt["upload_s"] else ""
        _console.print(
            f"  checkpoints  every {ckpt['save_steps']} steps to {place}, {ckpt['keep']} kept; "
            f"about {ckpt['size_gb']:g} GB each{upload}; up to {ckpt['max_restarts']} new "
            "pods if one is lost"
        )
    volume = data.get("network_volume")
    if volume:
        state = f"exists ({volume['id']})" if volume["exists"] else "will be created"
        there = ", ".join(volume["candidates"]) or "none of the candidates has stock there"
        _console.print(
            f"  volume  {volume['name']} {state} in {volume['data_center'] or '?'}; "
            f"candidates there: {there}"
        )
    for note in data["notes"]:
        _console.print(f"  note: {note}")
    for warning in data["warnings"]:
        _console.print(f"  [yellow]warning:[/yellow] {warning}")
    _console.print("[bold]recipe[/bold]")
    _console.print(yaml.safe_dump(data["recipe"], sort_keys=False).rstrip(), markup=False)
    _console.print("[bold]command[/bold]")
    _console.print(" ".join(data["command"]), markup=False)
    if data.get("wrapper"):
        # The trainer's entry point is what trains; thinnka's launcher is how it is started.
        wrapper = data["wrapper"]
        _console.print(f"  run via {', '.join(wrapper['scripts'])}: {wrapper['why']}", markup=False)


def print_plan_data(data: dict[str, Any]) -> None:
    """The local data sets (rows, columns, lengths) and what evaluation scores."""
    for item in data.get("data") or []:
        lengths = item.get("lengths")
        _console.print(
            f"  data ({item['role']})  {item['path']}: {item['rows']:,} rows, "
            f"{item['bytes'] / 1024**2:.2f} MB {item['format']}, sha256 {item['sha256'][:16]}…",
            markup=False,
        )
        _console.print(f"    columns  {', '.join(item['columns'])}", markup=False)
        if lengths:
            _console.print(
                f"    lengths  {lengths['unit']}: min {lengths['minimum']:,}, median "
                f"{lengths['median']:,}, 95th percentile {lengths['p95']:,}, "
                f"max {lengths['maximum']:,}",
                markup=False,
            )
    evaluation = data.get("evaluation")
    if evaluation is None:
        _console.print("  evaluation  off (--eval-fraction 0)", markup=False)
        return
    rows = (
        f"{evaluation['rows']:,} rows"
        if evaluation["rows"] is not None
        else "rows known on the pod"
    )
    points = int(evaluation.get("points") or 0)
    when = (
        f"before, {points} times during and after training"
        if points
        else "before and after training"
    )
    _console.print(
        f"  evaluation  {evaluation['metrics']} {when}, on {evaluation['split']}: {rows}",
        markup=False,
    )


def _print_cluster(cluster: dict[str, Any], required_gb: float) -> None:
    """``--nodes``: the Instant Cluster rented, its price for all nodes, the per-GPU need."""
    price = cluster["price_per_hour"]
    cost = "price unknown" if price is None else f"${price:.2f}/h for all of it"
    _console.print(
        f"  cluster  {cluster['label'] or str(cluster['nodes']) + ' nodes'} "
        f"({cluster['total_gpus']} GPUs), {cost}; ZeRO-3 over {cluster['total_gpus']} GPUs "
        f"needs {required_gb:.1f} GB per GPU (the $/hour above is per node)",
        markup=False,
    )

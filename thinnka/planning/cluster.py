"""Which Instant Cluster to rent for ``--nodes N``, and how many nodes a model would need.

Pure, like ``planning/gpus.py``, whose rules it reuses per node: the catalog's ``CLUSTER``
offers (one ``GpuOffer`` per GPU type, priced per GPU, for nodes of ``--gpu-count`` GPUs)
come in; the cluster candidates (a type × N nodes, with the price of all of it) go out.
The memory figure is per GPU for ZeRO-3 over every GPU of every node, which the caller
computes with the training plan of ``N`` nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from thinnka.errors import PreflightError, RefusedChoice
from thinnka.planning.gpus import GpuOffer, GpuSupport, GpuVerdict, Strategy, explain

__all__ = ["ClusterOffer", "choose_cluster", "nodes_needed"]


@dataclass(frozen=True)
class ClusterOffer:
    """``nodes`` nodes of ``gpu`` (its ``gpu_count`` GPUs per node)."""

    gpu: GpuOffer
    nodes: int

    @property
    def total_gpus(self) -> int:
        return self.gpu.gpu_count * self.nodes

    @property
    def price_per_hour(self) -> float | None:
        """What every GPU of every node costs per hour together (list price)."""
        per_node = self.gpu.price_per_hour
        return None if per_node is None else per_node * self.nodes

    @property
    def label(self) -> str:
        return f"{self.nodes} nodes × {self.gpu.gpu_count}× {self.gpu.display_name}"


def choose_cluster(
    offers: Iterable[GpuOffer],
    required_gb: float,
    nodes: int,
    *,
    strategy: Strategy = "priority",
    gpu_type: str | None = None,
    max_price: float | None = None,
    support: GpuSupport | None = None,
) -> tuple[list[ClusterOffer], list[GpuVerdict]]:
    """Cluster candidates in order and a verdict per GPU type; raises when none is left.

    ``PreflightError`` (``no_gpu_fits``) when no cluster GPU type holds ``required_gb``;
    ``RefusedChoice`` (exit 2) when ``--gpu-type`` or ``--max-price`` (checked against the
    whole cluster's price) removed every type that fits.
    """
    offers = list(offers)
    if not offers:
        raise PreflightError(
            "Runpod offers no GPU type as an Instant Cluster (catalog product CLUSTER).",
            reason="no_gpu_fits",
        )
    verdicts = explain(offers, required_gb, strategy=strategy, gpu_type=gpu_type, support=support)
    kept: list[ClusterOffer] = []
    final: list[GpuVerdict] = []
    for verdict in verdicts:
        cluster = ClusterOffer(verdict.offer, nodes)
        price = cluster.price_per_hour
        if verdict.kept and max_price is not None and (price is None or price > max_price):
            why = "price unknown" if price is None else f"${price:.2f}/h for the cluster"
            final.append(
                GpuVerdict(verdict.offer, False, f"{why} > --max-price ${max_price:.2f}/h")
            )
            continue
        if verdict.kept:
            kept.append(cluster)
            final.append(GpuVerdict(verdict.offer, True, verdict.reason, len(kept)))
        else:
            final.append(verdict)
    if kept:
        return kept, final
    fitting = [v for v in explain(offers, required_gb, support=support) if v.kept]
    if fitting:
        reasons = "; ".join(f"{v.offer.display_name}: {v.reason}" for v in final[:4])
        raise RefusedChoice(
            f"No Instant Cluster of {nodes} nodes is left after your choices ({reasons}).",
            reason="no_gpu_fits",
        )
    usable = [v.offer for v in verdicts if not v.reason.startswith("not usable")] or offers
    big = max(usable, key=lambda o: o.memory_gb)
    if big.memory_gb >= required_gb:
        raise PreflightError(
            f"No cluster GPU with {required_gb:.1f} GB per GPU is in stock for {nodes} nodes "
            f"of {big.gpu_count} GPUs: {', '.join(sorted({o.display_name for o in usable}))}.",
            reason="no_capacity",
        )
    more = " Add nodes (--nodes up to 8) or" if nodes < 8 else ""
    raise PreflightError(
        f"No cluster GPU holds {required_gb:.1f} GB per GPU (ZeRO-3 over {nodes} × "
        f"{big.gpu_count} GPUs): the largest is {big.display_name} ({big.memory_gb:g} GB).{more} "
        "train a smaller model.",
        reason="no_gpu_fits",
    )


def nodes_needed(
    required_gb_for: Callable[[int], float | None], largest_gb: float, max_nodes: int = 8
) -> tuple[int, float] | None:
    """The fewest nodes (2..``max_nodes``) whose per-GPU need fits ``largest_gb``, with that
    need; None if even ``max_nodes`` do not. ``required_gb_for(n)`` is None where ``n``
    nodes cannot train this run at all."""
    for count in range(2, max_nodes + 1):
        need = required_gb_for(count)
        if need is not None and need <= largest_gb:
            return count, need
    return None

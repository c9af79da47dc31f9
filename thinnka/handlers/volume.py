"""The network volume a run asked for (``--network-volume NAME``), and where its pod can go.

Found by name (names are not unique on Runpod: the first listed is used), else created
with ``--volume-gb`` in the first Secure Cloud data center that has stock of a planned GPU,
in the plan's order. The pod must then be placed in the volume's data center, so only the
candidates with stock there are tried. thinnka never deletes a volume: it outlives the run,
with its caches and checkpoints, for the next run or restart.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from thinnka.clients.runpod.volumes import NetworkVolume, VolumeApi, find_volume, volume_api
from thinnka.errors import CapacityError, ConfigError

if TYPE_CHECKING:
    from thinnka.planning.facts import PlanCandidate
    from thinnka.step import StepContext

__all__ = ["volume_attempts", "volume_size_gb"]


def _api(ctx: StepContext) -> VolumeApi:
    api = volume_api(ctx.services.runpod)
    if api is None:  # refused before the run existed (validate_for_settings); kept honest
        raise ConfigError("--network-volume needs Runpod's REST v2 API (THINNKA_RUNPOD_API=rest).")
    return api


def volume_size_gb(num_parameters: int, volume_gb: int) -> int:
    """--volume-gb, or (0) twice the bf16 weights with room for caches, at least 40 GB."""
    return volume_gb or max(40, math.ceil(num_parameters * 2 / 1e9 * 2))


def volume_attempts(
    ctx: StepContext, candidates: list[PlanCandidate], num_parameters: int
) -> tuple[NetworkVolume, list[tuple[PlanCandidate, str]]]:
    """The run's volume (created when absent) and the (candidate, cloud) pairs to try:
    Secure Cloud, only GPU types with stock in the volume's data center."""
    api = _api(ctx)
    name = ctx.run.options.network_volume or ""
    count = ctx.run.options.gpu_count
    stocked = {c.id: api.gpu_data_centers(c.id, count) for c in candidates}
    volume = find_volume(api, name)
    if volume is None:
        where = next((dcs[0] for c in candidates if (dcs := stocked[c.id])), None)
        if where is None:
            raise CapacityError(
                f"No planned GPU has Secure Cloud stock in any data center: network volume "
                f"{name} cannot be placed."
            )
        size = volume_size_gb(num_parameters, ctx.run.options.volume_gb)
        volume = api.create_volume(name, size, where)
        message = (
            f"Created network volume {name} ({volume.id}, {volume.size_gb} GB) in {where}; "
            "thinnka never deletes it."
        )
        ctx.note("volume_created", message)
        ctx.output.event("volume_created", message)
    else:
        ctx.output.event(
            "volume_found", f"Using network volume {name} ({volume.id}) in {volume.data_center}."
        )
    fits = [(c, "SECURE") for c in candidates if volume.data_center in stocked[c.id]]
    if not fits:
        raise CapacityError(
            f"No planned GPU has stock in {volume.data_center}, the data center of network "
            f"volume {name}; try again later or allow more GPU types (--gpu-type)."
        )
    return volume, fits

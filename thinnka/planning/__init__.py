"""Planning: the pure arithmetic that decides what to rent (no I/O, no heavy imports).

``vram`` estimates per-GPU memory for a (model, training shape) pair; ``gpus`` orders a
Runpod catalog against that requirement.
"""

from __future__ import annotations

from thinnka.planning.gpus import GpuOffer, GpuVerdict, choose, explain
from thinnka.planning.vram import MemoryEstimate, ModelFacts, TrainingShape, estimate, shape_for

__all__ = [
    "GpuOffer",
    "GpuVerdict",
    "MemoryEstimate",
    "ModelFacts",
    "TrainingShape",
    "choose",
    "estimate",
    "explain",
    "shape_for",
]

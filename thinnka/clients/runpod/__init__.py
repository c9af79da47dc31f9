"""Runpod behind a small typed interface; GraphQL is today's transport."""

from thinnka.clients.runpod.types import GpuOffer, Pod, PodPort, PodSpec, RunpodApi

__all__ = ["GpuOffer", "Pod", "PodPort", "PodSpec", "RunpodApi"]

"""One handler class per transition; ``default_handlers`` maps triggers to them."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from thinnka.handlers.base import Handler
from thinnka.step import Output, StepContext, StepResult

__all__ = ["Handler", "Output", "StepContext", "StepResult", "default_handlers"]

# trigger → (module under thinnka.handlers, class, the argument it is made with, if any).
_HANDLERS: dict[str, tuple[str, str, str | None]] = {
    "check_gate": ("gate", "GateHandler", None),
    "estimate": ("estimate", "EstimateHandler", None),
    "provision": ("provision", "ProvisionHandler", None),
    "connect": ("connect", "ConnectHandler", None),
    "install": ("install", "InstallHandler", None),
    "train": ("train", "TrainHandler", None),
    "push": ("push", "PushHandler", None),
    "terminate": ("terminate", "TerminateHandler", "terminate"),
    "cleanup": ("terminate", "TerminateHandler", "cleanup"),
}


# The steps up to the pod's create request: every run takes them, so they are made at once
# (``run`` makes them while the Hub and Runpod answer its checks).
_BEFORE_THE_POD = ("check_gate", "estimate", "provision")


class _Handlers(Mapping[str, Handler]):
    """The handlers; those after the pod's create request (SSH, uploads, training, push)
    are made (their modules imported) when their step first comes, while the pod boots,
    rather than before the request, which is what a run waits on first."""

    def __init__(self) -> None:
        self._made: dict[str, Handler] = {}
        for trigger in _BEFORE_THE_POD:
            self._make(trigger)

    def _make(self, trigger: str) -> Handler:
        module, name, argument = _HANDLERS[trigger]
        cls = getattr(importlib.import_module(f"thinnka.handlers.{module}"), name)
        handler: Handler = cls() if argument is None else cls(argument)
        self._made[trigger] = handler
        return handler

    def __getitem__(self, trigger: str) -> Handler:
        return self._made.get(trigger) or self._make(trigger)

    def __iter__(self) -> Iterator[str]:
        return iter(_HANDLERS)

    def __len__(self) -> int:
        return len(_HANDLERS)


def default_handlers() -> Mapping[str, Handler]:
    return _Handlers()

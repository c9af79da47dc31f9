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


class _Handlers(Mapping[str, Handler]):
    """The handlers, each made (its module imported) when its step first comes: the steps
    after the pod's create request (SSH, uploads, training, push) import theirs while the
    pod boots rather than before the request, which is what a run waits on first."""

    def __init__(self) -> None:
        self._made: dict[str, Handler] = {}

    def __getitem__(self, trigger: str) -> Handler:
        handler = self._made.get(trigger)
        if handler is None:
            module, name, argument = _HANDLERS[trigger]
            cls = getattr(importlib.import_module(f"thinnka.handlers.{module}"), name)
            handler = cls() if argument is None else cls(argument)
            self._made[trigger] = handler
        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(_HANDLERS)

    def __len__(self) -> int:
        return len(_HANDLERS)


def default_handlers() -> Mapping[str, Handler]:
    return _Handlers()

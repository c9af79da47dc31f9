"""One handler class per transition; ``default_handlers`` maps triggers to them."""

from __future__ import annotations

from thinnka.handlers.base import Handler
from thinnka.step import Output, StepContext, StepResult

__all__ = ["Handler", "Output", "StepContext", "StepResult", "default_handlers"]


def default_handlers() -> dict[str, Handler]:
    from thinnka.handlers.connect import ConnectHandler
    from thinnka.handlers.estimate import EstimateHandler
    from thinnka.handlers.gate import GateHandler
    from thinnka.handlers.install import InstallHandler
    from thinnka.handlers.provision import ProvisionHandler
    from thinnka.handlers.push import PushHandler
    from thinnka.handlers.terminate import TerminateHandler
    from thinnka.handlers.train import TrainHandler

    handlers: list[Handler] = [
        GateHandler(),
        EstimateHandler(),
        ProvisionHandler(),
        ConnectHandler(),
        InstallHandler(),
        TrainHandler(),
        PushHandler(),
        TerminateHandler("terminate"),
        TerminateHandler("cleanup"),
    ]
    return {handler.trigger: handler for handler in handlers}

"""A GPU's step time for the emulated pod's real TRL training (tests only).

A 31k-parameter model trains a step on the CPU in milliseconds, so a test cannot lose the
pod *between* two checkpoints of a real training. With this folder on the pod's
``PYTHONPATH`` (``FakeRunpod.set_image_env``) and ``THINNKA_TEST_STEP_S`` set, every
``Trainer.training_step`` first sleeps that long, as a step of a real model takes time on
a real GPU; nothing else changes. Imported by Python at start-up (``sitecustomize``); it
patches ``transformers.trainer`` only when that module is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from typing import Any

_STEP_S = float(os.environ.get("THINNKA_TEST_STEP_S") or 0)
_TARGET = "transformers.trainer"


class _SlowSteps(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            step = module.Trainer.training_step

            def slow_step(self: Any, *args: Any, **kwargs: Any) -> Any:
                time.sleep(_STEP_S)
                return step(self, *args, **kwargs)

            module.Trainer.training_step = slow_step

        loader.exec_module = exec_module
        return spec


if _STEP_S > 0:
    sys.meta_path.insert(0, _SlowSteps())

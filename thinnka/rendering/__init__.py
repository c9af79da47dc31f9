"""The files of a run, written from its plan: recipe, accelerate config, launcher, setup values.

The pipeline calls ``render(options, model, paths)`` and uploads what it returns; see
``Rendered`` for the contract. Rendering never decides: every choice comes from the run's
``TrainingPlan`` (``thinnka.planning``). Nothing here imports torch, transformers or TRL: the
whitelists of recipe keys are data files (``recipes/schema``), so ``thinnka --help`` stays fast.
"""

from __future__ import annotations

from thinnka.rendering.rendered import Rendered
from thinnka.rendering.run_files import render, script_text
from thinnka.rendering.setup_env import write_env_file

__all__ = ["Rendered", "render", "script_text", "write_env_file"]

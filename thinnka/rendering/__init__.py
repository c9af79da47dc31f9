"""Training recipes, accelerate configs, launch commands and setup values for a run.

The pipeline calls ``render(options, model, paths)`` and uploads what it returns; see
``Rendered`` for the contract. Nothing here imports torch, transformers or TRL: the
whitelists of recipe keys are data files (``recipes/schema``), so ``thinnka --help`` stays fast.
"""

from __future__ import annotations

from thinnka.rendering.chat import CHATML_DEFAULT, system_prompt
from thinnka.rendering.records import ModelContext, RemotePaths, Rendered
from thinnka.rendering.render import plan_training, render, script_text, validate_overrides
from thinnka.rendering.schema import load_schema
from thinnka.rendering.setup_env import write_env_file
from thinnka.rendering.versions import (
    OPENR1_REF,
    OPENR1_STACK,
    TRL_PIN,
    TRL_STACK,
    TransformersChoice,
    choose_transformers,
)

__all__ = [
    "CHATML_DEFAULT",
    "OPENR1_REF",
    "OPENR1_STACK",
    "TRL_PIN",
    "TRL_STACK",
    "ModelContext",
    "RemotePaths",
    "Rendered",
    "TransformersChoice",
    "choose_transformers",
    "load_schema",
    "plan_training",
    "render",
    "script_text",
    "system_prompt",
    "validate_overrides",
    "write_env_file",
]

"""Where a run's files live on the pod, and the run's rendered recipe.

The pod layout (under ``/workspace``, the volume):

    thinnka/<run-id>/        run.env, recipe files, scripts, *.log, *.pid, *.exit
    models/<hub-id-dashed>/  training output (unless --output-dir)
    .cache/huggingface/      HF_HOME, with the token file (0600)

``THINNKA_REMOTE_ROOT`` and ``THINNKA_REMOTE_VENV`` move the layout; the test
suite uses them because its emulated pods all share one machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thinnka.options import RunOptions
from thinnka.records import GateFacts
from thinnka.settings import Settings

if TYPE_CHECKING:
    from thinnka.rendering import RemotePaths, Rendered

__all__ = ["remote_paths", "render_for", "venv_for"]

DEFAULT_REMOTE_ROOT = "/workspace"
DEFAULT_VENVS = {"trl": "/opt/thinnka-trl-venv", "openr1": "/opt/openr1-venv"}


def venv_for(settings: Settings, trainer: str) -> str:
    return settings.extra.get("THINNKA_REMOTE_VENV") or DEFAULT_VENVS[trainer]


def remote_paths(
    settings: Settings, run_id: str, options: RunOptions, gate: GateFacts
) -> RemotePaths:
    from thinnka.rendering import RemotePaths

    root = (settings.extra.get("THINNKA_REMOTE_ROOT") or DEFAULT_REMOTE_ROOT).rstrip("/")
    dashed = gate.hub_model_id.replace("/", "-")
    return RemotePaths(
        run_dir=f"{root}/thinnka/{run_id}",
        output_dir=options.output_dir or f"{root}/models/{dashed}",
        venv=venv_for(settings, options.trainer),
        hf_home=f"{root}/.cache/huggingface",
    )


def render_for(options: RunOptions, gate: GateFacts, paths: RemotePaths) -> Rendered:
    """The recipe, accelerate config, launch command and setup values of a run."""
    from thinnka.rendering import ModelContext, render

    context = ModelContext(
        hub_model_id=gate.hub_model_id,
        has_chat_template=gate.has_chat_template,
        system_role_supported=gate.system_role_supported,
        transformers_version=gate.transformers_version,
        model_type=gate.model_type,
    )
    return render(options, context, paths)

"""Where a run's files live on the pod.

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
from thinnka.planning.facts import GateFacts
from thinnka.settings import Settings

if TYPE_CHECKING:
    from thinnka.planning.facts import RemotePaths

__all__ = ["remote_paths", "run_dir_for", "venv_for"]

DEFAULT_REMOTE_ROOT = "/workspace"
DEFAULT_VENVS = {"trl": "/opt/thinnka-trl-venv", "openr1": "/opt/openr1-venv"}


def venv_for(settings: Settings, trainer: str) -> str:
    return settings.extra.get("THINNKA_REMOTE_VENV") or DEFAULT_VENVS[trainer]


def run_dir_for(settings: Settings, run_id: str) -> str:
    """The run's folder on the pod (known before anything else about the run's files)."""
    root = (settings.extra.get("THINNKA_REMOTE_ROOT") or DEFAULT_REMOTE_ROOT).rstrip("/")
    return f"{root}/thinnka/{run_id}"


def remote_paths(
    settings: Settings, run_id: str, options: RunOptions, gate: GateFacts
) -> RemotePaths:
    from thinnka.planning.facts import RemotePaths

    root = (settings.extra.get("THINNKA_REMOTE_ROOT") or DEFAULT_REMOTE_ROOT).rstrip("/")
    dashed = gate.hub_model_id.replace("/", "-")
    # On a network volume every run has its own output folder: the trainer resumes from any
    # checkpoint it finds there, and the volume keeps earlier runs' folders.
    output = (
        f"{root}/thinnka/{run_id}/output" if options.network_volume else f"{root}/models/{dashed}"
    )
    return RemotePaths(
        run_dir=run_dir_for(settings, run_id),
        output_dir=options.output_dir or output,
        venv=venv_for(settings, options.trainer),
        hf_home=f"{root}/.cache/huggingface",
    )

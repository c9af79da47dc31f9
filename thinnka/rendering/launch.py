"""The accelerate config and the launch commands.

vLLM server mode (the plan decides it; docs/trainers.md, "vLLM modes"): the rendered
``command`` runs ``serve_and_train.py``, a small launcher shipped to run_dir. It starts
``trl vllm-serve`` on GPU 0 (``Rendered.server_command``), waits for its health endpoint,
trains with ``CUDA_VISIBLE_DEVICES=1..N-1`` and ``num_processes = N - 1``, and stops the
server when training ends, whatever the outcome. One command keeps the pipeline's single
"train" job and its exit status meaningful.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from thinnka.resources import resource_dir

if TYPE_CHECKING:
    from thinnka.planning.facts import RemotePaths
    from thinnka.planning.training import TrainingPlan

__all__ = [
    "SERVER_HOST",
    "SERVER_PORT",
    "accelerate_config",
    "entry_argv",
    "server_files",
    "train_argv",
]

SERVER_HOST = "127.0.0.1"
SERVER_PORT = 8000
# Loading a large model into vLLM (download included) can take many minutes.
SERVER_STARTUP_TIMEOUT_S = 1800


def accelerate_config(config: str, processes: int, recipe: dict[str, Any]) -> dict[str, Any]:
    """recipes/accelerate/<config>.yaml with the run's process count and precision."""
    path = resource_dir("recipes") / "accelerate" / f"{config}.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["num_processes"] = processes
    # accelerate's autocast must agree with the recipe, or `bf16: false` would be ignored.
    if recipe.get("bf16"):
        data["mixed_precision"] = "bf16"
    elif recipe.get("fp16"):
        data["mixed_precision"] = "fp16"
    else:
        data["mixed_precision"] = "no"
    if recipe.get("use_cpu"):
        data["use_cpu"] = True
    return data


def _accelerate(paths: RemotePaths, target: list[str]) -> list[str]:
    run_dir = paths.run_dir
    config = ["--config", f"{run_dir}/recipe.yaml"]
    return ["accelerate", "launch", "--config_file", f"{run_dir}/accelerate.yaml", *target, *config]


def _entry_target(paths: RemotePaths, plan: TrainingPlan) -> list[str]:
    values = {"openr1_dir": paths.openr1_dir, "mode": plan.mode}
    return [part.format(**values) for part in plan.stack.entry_argv]


def entry_argv(paths: RemotePaths, plan: TrainingPlan) -> list[str]:
    """The trainer's own entry point under ``accelerate launch``: what really trains.

    This is the command ``thinnka plan`` shows; when the plan needs thinnka's launcher,
    ``train_argv`` runs that instead, with the same recipe and accelerate config.
    """
    return _accelerate(paths, _entry_target(paths, plan))


def train_argv(paths: RemotePaths, plan: TrainingPlan) -> list[str]:
    """``accelerate launch`` of the training script, run in run_dir with the venv active."""
    if plan.wrapper is None:
        return entry_argv(paths, plan)
    return _accelerate(paths, [f"{paths.run_dir}/{plan.wrapper}"])


def server_files(
    paths: RemotePaths,
    *,
    model: str,
    revision: str,
    gpu_count: int,
    max_model_len: int,
    trust_remote_code: bool,
    train: list[str],
) -> tuple[list[str], list[str], dict[str, Any]]:
    """(command, server argv, serve_and_train.json) for vLLM server mode on one node."""
    server = [
        "trl",
        "vllm-serve",
        "--model",
        model,
        "--revision",
        revision,
        "--tensor_parallel_size",
        "1",
        "--data_parallel_size",
        "1",
        "--gpu_memory_utilization",
        "0.9",
        "--max_model_len",
        str(max_model_len),
        "--host",
        SERVER_HOST,
        "--port",
        str(SERVER_PORT),
    ]
    if trust_remote_code:
        server.append("--trust_remote_code")
    base = f"http://{SERVER_HOST}:{SERVER_PORT}"
    settings = {
        "server": server,
        "server_gpus": "0",
        "train": train,
        "train_gpus": ",".join(str(i) for i in range(1, gpu_count)),
        # TRL 0.18's own server answers /health/; vLLM's (TRL 1.x) answers /health.
        "health_urls": [f"{base}/health/", f"{base}/health"],
        "startup_timeout_s": SERVER_STARTUP_TIMEOUT_S,
    }
    command = [
        "python",
        f"{paths.run_dir}/serve_and_train.py",
        f"{paths.run_dir}/serve_and_train.json",
    ]
    return command, server, settings

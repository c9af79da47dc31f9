"""connected → installed: run files uploaded, secrets placed, the trainer installed.

The HF token goes over SFTP into ``$HF_HOME/token`` with mode 0600 (never on
a command line, never in the pod's env); the W&B key likewise into the run
folder. The setup script takes its values from ``run.env`` and keeps a marker
keyed by what it installed, so running it again skips the work.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from thinnka.data.upload import upload_run_data
from thinnka.handlers.base import rendered_for_run
from thinnka.handlers.restart import forget_jobs
from thinnka.options.limits import push_pause_s
from thinnka.pod.jobs import follow_job, require_pod
from thinnka.pod.shell import open_shell
from thinnka.resources import resource_dir
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord

if TYPE_CHECKING:
    from collections.abc import Mapping

    from thinnka.clients.ssh import PodShell
    from thinnka.planning.facts import RemotePaths
    from thinnka.rendering import Rendered

__all__ = ["InstallHandler", "final_push_job", "run_env"]

_OWN_SCRIPTS = (
    "job.sh", "train.sh", "check_stack.py", "setup_common.sh", "prefetch.py", "thinnka_mark.py",
    "probe_python.py", "thinnka_push.py", "thinnka_restore.py",
)  # fmt: skip


def final_push_job(rendered: Rendered) -> str:
    """The job whose success means the final model is on the Hub ("" when none pushes)."""
    if rendered.merge:
        return "merge"  # the adapter went to its own repo; merge.py pushes the model
    return "train" if rendered.recipe.get("push_to_hub") else ""


def run_env(ctx: StepContext, paths: RemotePaths, rendered: Rendered) -> dict[str, str]:
    """Non-secret values every job on the pod sees (``run.env``)."""
    from thinnka.planning.versions import POD_TOOLS

    env = {
        "VENV": paths.venv,
        "HF_HOME": paths.hf_home,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
        "THINNKA_RUN_ID": ctx.run.id,
        "THINNKA_TRACE": "1" if ctx.run.options.debug_remote else "0",
        "THINNKA_USE_CPU": "true" if rendered.recipe.get("use_cpu") else "false",
        # On the volume, beside HF_HOME: a later setup on the same pod (restarted, with a new
        # container disk) downloads nothing again. The volume is deleted with the pod.
        "THINNKA_CACHE_DIR": posixpath.dirname(paths.hf_home),
        "UV_SPEC": f"=={POD_TOOLS['uv']}",
        # Downloaded while the stack installs (prefetch.py), into HF_HOME.
        "THINNKA_PREFETCH_MODEL": ctx.run.options.repo_id,
        "THINNKA_PREFETCH_DATASET": ctx.run.options.dataset_name,  # "" for a local one
        # After the job that makes the final push exits 0, train.sh runs thinnka_mark.py,
        # which writes thinnka-run.json (this run's id) to that repo: the push check's proof
        # that the final model is there, not a checkpoint pushed on the way.
        "THINNKA_FINAL_JOB": final_push_job(rendered),
        "THINNKA_PUSH_REPO": ctx.run.hub_model_id or "",
        # Where the trainer pushes checkpoints (last-checkpoint/): the target, or the adapter's
        # repo with --merge-model. A restart fetches from it; the final mark cleans it.
        "THINNKA_CHECKPOINT_REPO": str(rendered.recipe.get("hub_model_id") or ""),
        "THINNKA_OUTPUT_DIR": paths.output_dir,
        # When the trainer saved its model but its final push failed, train.sh pushes the
        # output folder itself (thinnka_push.py), pausing this long after the first failure.
        "THINNKA_PUSH_PAUSE_S": f"{push_pause_s(ctx.run.options):.3g}",
    }
    # THINNKA_POD_INSTALLER=pip|uv and THINNKA_POD_PYTHON (the image's python) are overrides
    # for pods whose image needs them (README, Development); the default probes the image.
    for setting, name in (("THINNKA_POD_INSTALLER", "THINNKA_POD_INSTALLER"),
                          ("THINNKA_POD_PYTHON", "THINNKA_PYTHON")):  # fmt: skip
        if ctx.settings.extra.get(setting):
            env[name] = ctx.settings.extra[setting]
    if ctx.settings.hf_endpoint:
        env["HF_ENDPOINT"] = ctx.settings.hf_endpoint
        env["HF_HUB_DISABLE_XET"] = "1"  # a non-Hub endpoint speaks no xet
    restarts = ctx.run.remote.restarts
    if restarts.count:
        # A new pod after a lost one: train.sh resumes from this checkpoint (thinnka_restore.py
        # fetches it from the Hub commit, or finds it on the network volume); a restart from
        # scratch names step 0.
        env["THINNKA_RESTORE_STEP"] = str(restarts.step or 0)
        env["THINNKA_RESTORE_COMMIT"] = restarts.commit or ""
    env.update(rendered.setup_env)
    return env


class InstallHandler:
    trigger: ClassVar[str] = "install"

    def timeout_s(self, run: RunRecord) -> float:
        return 3600.0

    def run(self, ctx: StepContext) -> StepResult:
        paths, rendered = rendered_for_run(ctx)
        require_pod(ctx, "its setup could finish")
        shell = open_shell(ctx)
        shell.make_dirs(paths.run_dir, paths.hf_home)
        if ctx.run.remote.restarts.count:
            forget_jobs(shell, paths.run_dir)
        remote = replace(
            ctx.run.remote, run_dir=paths.run_dir, output_dir=paths.output_dir, venv=paths.venv
        )
        ctx.save(remote=remote)

        env = run_env(ctx, paths, rendered)
        setup = ["bash", rendered.setup_script]
        multi = ctx.run.options.multi_node
        if multi:  # every node its own accelerate config and env; setups run side by side
            from thinnka.handlers.cluster import (
                cluster_files,
                finish_worker_setups,
                start_worker_jobs,
                upload_to_workers,
            )
            from thinnka.pod.cluster import NodeFacts, nodes_of

            def to_node(node_shell: PodShell, node: NodeFacts) -> None:
                node_shell.make_dirs(paths.run_dir, paths.hf_home)
                _upload(ctx, node_shell, paths, rendered, *cluster_files(ctx, rendered, env, node))
                upload_run_data(ctx, node_shell, paths.run_dir)  # every rank reads the data

            upload_to_workers(ctx, to_node)
            start_worker_jobs(ctx, paths, "setup", setup)
            files, env = cluster_files(ctx, rendered, env, nodes_of(ctx)[0])
        else:
            files = rendered.files
        _upload(ctx, shell, paths, rendered, files, env)
        ctx.output.event("config_uploaded", f"Recipe and scripts uploaded to {paths.run_dir}.")
        upload_run_data(ctx, shell, paths.run_dir)

        label = "Checking the image" if ctx.run.options.setup_skipped else "Installing the trainer"
        ctx.output.event("setup_start", f"{label} ({ctx.run.options.trainer}).")
        follow_job(ctx, shell, "setup", "setup", start=setup).require_success(
            "Setup", "setup_failed"
        )
        if multi:
            finish_worker_setups(ctx, paths, "setup")
        ctx.output.event("setup_done", "Trainer ready.")
        return StepResult(message=f"Trainer ready ({rendered.transformers_spec}).")


def _upload(
    ctx: StepContext,
    shell: PodShell,
    paths: RemotePaths,
    rendered: Rendered,
    files: Mapping[str, str],
    env: Mapping[str, str],
) -> None:
    """The run's secrets (0600 files), scripts, rendered files and ``run.env`` to one pod."""
    from thinnka.rendering import write_env_file

    token = ctx.settings.hf_token
    if token:
        shell.put_text(f"{paths.hf_home}/token", token.reveal(), mode=0o600)
    if ctx.settings.wandb_api_key and ctx.run.options.report_to == "wandb":
        shell.put_text(
            f"{paths.run_dir}/wandb_key", ctx.settings.wandb_api_key.reveal(), mode=0o600
        )
    scripts = resource_dir("recipes") / "scripts"
    for name in {*_OWN_SCRIPTS, rendered.setup_script}:
        shell.put_text(f"{paths.run_dir}/{name}", (scripts / name).read_text(), mode=0o755)
    for name, text in files.items():
        shell.put_text(f"{paths.run_dir}/{name}", text)
    shell.put_text(f"{paths.run_dir}/run.env", write_env_file(env))

"""A stand-in trainer for tests about orchestration, not training.

Real TRL on the CPU costs tens of seconds per run; the watchdog, recover and
crash-matrix tests need many runs and care about what the *pod* does: a job
that prints progress for as long as told, pushes to the (emulated) Hub and
exits, or fails. The stand-in is the pod venv's ``accelerate``: the rendered
launch command (``accelerate launch ... --config recipe.yaml``) runs it with
the real run folder, token file and ``HF_ENDPOINT``; everything else
(setup, job.sh, train.sh, the watchdog) is the real thing.

How it behaves comes from ``standin.json`` in the pod volume's root (the test
writes it): ``{"steps": N, "step_s": S, "fail": false, "push": true, "push_every": K}``.
As transformers does with ``push_to_hub``, it creates the target repo before the first step,
pushes a checkpoint ("Training in progress, step N") every ``push_every`` steps (0: never)
and the final model ("End of training") at the end. thinnka's ``train.sh`` then records the
final push (``thinnka_mark.py``), as it does after a real trainer.

Fixtures (import ``standin_venv_fixture`` and ``standin_world_fixture`` into a test
module): ``standin_venv`` (session) and ``standin_world`` (a ``World`` whose pods
train with the stand-in).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.thinnka_world import World, build_world, make_pod_venv
from tests.world.hub import FakeHub
from tests.world.runpod import FakeRunpod
from tests.world.sshd import FakeSshd

__all__ = [
    "CPU",
    "install_standin",
    "standin_run",
    "standin_venv_fixture",
    "standin_world_fixture",
    "tell_standin",
]

CPU = ["--trainer", "trl", "--set", "use_cpu=true", "--set", "bf16=false"]

_SCRIPT = '''#!{python}
"""thinnka test stand-in for `accelerate launch ... --config recipe.yaml`."""
import json, sys, time
from pathlib import Path
import yaml
args = sys.argv[1:]
config = Path(args[args.index("--config") + 1])
recipe = yaml.safe_load(config.read_text())
told = Path(config).parent.parent.parent / "standin.json"
behaviour = json.loads(told.read_text()) if told.exists() else {{}}
steps = int(behaviour.get("steps", 3))
step_s = float(behaviour.get("step_s", 0.05))
push = behaviour.get("push", True)
push_every = int(behaviour.get("push_every", 0))
if push or push_every:
    # As transformers' Trainer does with push_to_hub: the repo is made before the first step
    # (a new repo's first commit is the Hub's own .gitattributes).
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo(recipe["hub_model_id"], exist_ok=True)
print("stand-in trainer: training", recipe.get("hub_model_id"), flush=True)
for step in range(1, steps + 1):
    time.sleep(step_s)
    # As transformers' Trainer writes it: its tqdm bar, redrawn after a carriage return,
    # and each logged dict on a line of its own (tqdm.write clears the bar, prints the
    # line, redraws the bar).
    filled = step * 10 // steps
    bar = (f"{{step * 100 // steps:3d}}%|" + "\u2588" * filled + " " * (10 - filled)
           + f"| {{step}}/{{steps}} [00:{{step:02d}}<00:{{steps - step:02d}},  1.00it/s]")
    logged = f"{{{{'loss': '{{round(2.0 / step, 4)}}', 'epoch': '{{step / steps:.4g}}'}}}}"
    sys.stdout.write(f"\\r{{bar}}\\r{{' ' * len(bar)}}\\r{{logged}}\\n\\r{{bar}}")
    sys.stdout.flush()
    if push_every and step % push_every == 0 and step < steps:
        # hub_strategy every_save: each checkpoint is pushed while the training goes on.
        api.upload_file(path_or_fileobj=f"weights at step {{step}}".encode(),
                        path_in_repo="model.safetensors", repo_id=recipe["hub_model_id"],
                        commit_message=f"Training in progress, step {{step}}")
        print(f"stand-in trainer: pushed checkpoint {{step}}", flush=True)
print("", flush=True)
if behaviour.get("fail"):
    print("stand-in trainer: failing as told", file=sys.stderr, flush=True)
    sys.exit(1)
if push:
    # As Trainer.push_to_hub does: save_model into output_dir first, then one commit.
    output_dir = Path(recipe.get("output_dir") or ".")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "model.safetensors").write_bytes(b"stand-in weights")
    (output_dir / "config.json").write_text("{{}}")
    api.upload_file(path_or_fileobj=b"stand-in weights", path_in_repo="model.safetensors",
                    repo_id=recipe["hub_model_id"], commit_message="End of training")
    print("stand-in trainer: pushed", flush=True)
'''


def tell_standin(world: World, **behaviour: object) -> None:
    """How the next trainings of this world behave (steps, step_s, fail, push, push_every)."""
    (world.remote_root / "standin.json").write_text(json.dumps(behaviour))


def install_standin(venv: Path) -> Path:
    """Make a pod venv (``make_pod_venv``) train with the stand-in: its ``accelerate``."""
    script = venv / "bin" / "accelerate"
    script.write_text(_SCRIPT.format(python=venv / "bin" / "python"))
    script.chmod(0o755)
    return venv


@pytest.fixture(scope="session", name="standin_venv")
def standin_venv_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_standin(make_pod_venv(tmp_path_factory.mktemp("standin-pod") / "venv"))


@pytest.fixture(name="standin_world")
def standin_world_fixture(
    tmp_path: Path,
    runpod_account: FakeRunpod,
    sshd_pod: FakeSshd,
    fake_hub: FakeHub,
    standin_venv: Path,
) -> Iterator[World]:
    fake_hub.reset()
    built = build_world(tmp_path, runpod_account, fake_hub, sshd_pod, standin_venv)
    tell_standin(built)
    yield built


def standin_run(world: World, *extra: str) -> list[str]:
    """``thinnka run`` argv for a short SFT that the stand-in trains."""
    return ["run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "3",
            "--dataset-name", world.hub.datasets.sft, *CPU, *extra]  # fmt: skip


if __name__ == "__main__":  # pragma: no cover - print the script for a look
    sys.stdout.write(_SCRIPT.format(python=sys.executable))

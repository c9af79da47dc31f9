"""Capture the Open R1 stack's real training output for the metrics parser's tests (offline tool).

``python tools/capture_trainer_logs.py --venv DIR`` (from the repository root) makes DIR, a
venv with the Open R1 stack's pins (``thinnka.planning.versions.OPENR1_STACK``: TRL,
transformers, accelerate; datasets and huggingface-hub at what Open R1's floating bounds
resolved to) over the CPU build of torch, unless DIR has them already. It then runs
``tools/openr1_stack_train.py`` for SFT and GRPO there under ``accelerate launch --cpu`` and
writes what they printed (stdout and stderr, as the pod's job log has them) to
``tests/data/openr1_stack_{sft,grpo}_remote.log`` the way thinnka keeps a run's local copy:
each line ``[train] ...``, a tqdm redraw (text ended by a carriage return) left out.

What is real: TRL 0.18.0's SFTTrainer and GRPOTrainer, transformers 4.52.3's logging,
accelerate 1.4.0, on the test suite's tiny model. What is not: Open R1's own scripts and
reward functions (see tools/openr1_stack_train.py), torch (2.13 CPU, not 2.6 CUDA), vLLM,
DeepSpeed. Needs PyPI once, to make the venv. tests/data/README.md lists every capture.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thinnka.planning.versions import OPENR1_STACK  # noqa: E402
from thinnka.pod.jobs import _LineSplitter  # noqa: E402 - the follower's own rule

# Not in OPENR1_STACK (Open R1 leaves them floating): what its bounds resolved to when pinned.
# rich: TRL prints its completions table with it when installed (Open R1's full install has it).
_FLOATING = ("datasets==5.0.1", "huggingface-hub==0.36.2", "rich")
_TORCH_CPU = "torch==2.13.0+cpu"


def stack_requirements() -> list[str]:
    pinned = [f"{name}=={OPENR1_STACK[name]}" for name in ("trl", "transformers", "accelerate")]
    return [_TORCH_CPU, *pinned, *_FLOATING]


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheels = glob.glob("/opt/wheels/torch-2.13.0+cpu-*.whl")
    index = ["--find-links", "/opt/wheels"] if wheels else [
        "--extra-index-url", "https://download.pytorch.org/whl/cpu"]  # fmt: skip
    subprocess.run([python, "-m", "pip", "install", "-q", *index, *stack_requirements()],
                   check=True, timeout=1800)  # fmt: skip
    return python


def as_local_copy(output: bytes, stage: str = "train") -> str:
    """The bytes a job printed as thinnka's local copy keeps them (jobs._Follower.feed)."""
    items, consumed = _LineSplitter().feed(output if output.endswith(b"\n") else output + b"\n")
    assert consumed == len(output) + (0 if output.endswith(b"\n") else 1)
    kept = [text for text, progress in items if not progress and text.strip()]
    return "".join(f"[{stage}] {text}\n" for text in kept)


def capture(python: Path, mode: str, workdir: Path) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON"))},
        "HF_HOME": str(workdir / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
    }  # fmt: skip
    accelerate = python.parent / "accelerate"
    command = [str(accelerate), "launch", "--cpu", "--num_processes", "1", "--mixed_precision",
               "no", str(ROOT / "tools" / "openr1_stack_train.py"), mode, str(workdir)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=900)  # fmt: skip
    if done.returncode != 0:
        sys.stderr.buffer.write(done.stdout[-4000:])
        raise SystemExit(f"{mode}: the training failed (exit {done.returncode})")
    return as_local_copy(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, required=True, help="the Open R1 stack's venv")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    options = parser.parse_args()
    python = ensure_venv(options.venv)
    with tempfile.TemporaryDirectory(prefix="openr1-capture-") as tmp:
        for mode in ("sft", "grpo"):
            text = capture(python, mode, Path(tmp)).replace(tmp, "/tmp/openr1-capture")
            target = options.out / f"openr1_stack_{mode}_remote.log"
            target.write_text(text, encoding="utf-8")
            print(f"{target}: {len(text.splitlines())} lines")


if __name__ == "__main__":
    main()

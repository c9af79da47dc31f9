"""Pod seconds not spent training: a whole SFT run in the emulated world, four ways.

"Not training" = how long the emulated Runpod billed the pod (its ledger: create to
terminate) minus how long the training job ran (its pid/exit files). Cases, in one run so
they share the machine's noise:
  1. a fresh pod (new venv, empty volume), stack installed with pip
  2. a fresh pod, stack installed with uv (bootstrapped from PyPI, as on a stock image)
  3. a new venv on case 2's volume (warm uv cache: on Runpod, the same pod restarted, as
     a pod's volume is deleted with the pod)
  4. --skip-setup on a prepared image (case 3's venv: the stack is there already)
  5. a fresh pod with a new, empty network volume (--network-volume; pods get disks of their
     own, FakeRunpod.use_disks): uv's cache and HF_HOME start empty on the volume
  6. a second fresh pod with that volume, now warm (a second run, or a restart after a lost
     pod): a new venv, but uv's cache and the model are on the volume already
The pods' image is stood in for by a copy of this Python with only torch installed (as the
Runpod PyTorch image has torch and nothing else), so fresh installs download the trl stack
from PyPI for real, while torch comes from the image. Needs network access to PyPI.
Run: python bench/setup_time.py [--keep DIR] [--only-volume]
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from _common import emulated_world

if TYPE_CHECKING:
    from tests.plugins.thinnka_world import World
    from tests.world.hub import FakeHub

CACHE = Path.home() / ".cache" / "thinnka-bench"
TORCH = "torch==2.13.0+cpu"


def image_python() -> Path:
    """A copy of this interpreter's base installation, without its site-packages, plus torch.

    A venv cannot stand in: --system-site-packages of a venv made from a venv sees the base
    interpreter's packages, not the venv's; a copy is an installation of its own.
    """
    image = CACHE / "image"
    python = image / "bin" / "python3"
    if (image / "ready").exists():
        return python
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    shutil.rmtree(image, ignore_errors=True)
    (image / "bin").mkdir(parents=True)
    (image / "lib").mkdir()
    shutil.copy2(base / "bin" / version, image / "bin" / version)
    (image / "bin" / "python3").symlink_to(version)
    for lib in glob.glob(str(base / "lib" / "libpython*")):
        shutil.copy2(lib, image / "lib" / Path(lib).name, follow_symlinks=False)
    shutil.copytree(
        base / "lib" / version,
        image / "lib" / version,
        ignore=shutil.ignore_patterns("site-packages", "test", "__pycache__"),
        symlinks=True,
    )
    (image / "lib" / version / "site-packages").mkdir()
    include = sysconfig.get_paths()["include"]
    if Path(include).exists():
        shutil.copytree(include, image / "include" / version, symlinks=True)
    subprocess.run([python, "-m", "ensurepip"], check=True, capture_output=True)
    wheels = glob.glob("/opt/wheels/torch-2.13.0+cpu-*.whl")
    index = ["--find-links", "/opt/wheels"] if wheels else [
        "--extra-index-url", "https://download.pytorch.org/whl/cpu"]  # fmt: skip
    subprocess.run([python, "-m", "pip", "install", "-q", *index, TORCH], check=True)
    (image / "ready").touch()
    return python


def run_case(label: str, world: World, hub: FakeHub, args: list[str]) -> dict[str, float | str]:
    result = world.thinnka(
        "run", "--repo-id", hub.models.chat, "--sft", "--max-steps", "1",
        "--dataset-name", hub.datasets.sft, "--trainer", "trl",
        "--set", "use_cpu=true", "--set", "bf16=false", "--set", "torch_dtype=float32",
        *args, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{label}: the run failed\n{result.stderr[-3000:]}")
    run_id = result.stdout.split()[1]
    shown = json.loads(world.thinnka("show", run_id, "--json").stdout)
    run_dir = Path(shown["remote"]["run_dir"])
    [bill] = [e for e in world.runpod.ledger() if e.pod_id == shown["pod_id"]]

    def job(name: str) -> float:
        return (run_dir / f"{name}.exit").stat().st_mtime - (
            run_dir / f"{name}.pid"
        ).stat().st_mtime

    alive = bill.seconds_alive
    train = job("train")
    setup_log = (run_dir / "setup.log").read_text()
    installer = next((line for line in setup_log.splitlines() if "installing with" in line), "")
    return {
        "case": label,
        "pod_alive_s": round(alive, 1),
        "training_s": round(train, 1),
        "not_training_s": round(alive - train, 1),
        "setup_job_s": round(job("setup"), 1),
        "installer": installer.removeprefix("thinnka: "),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the worlds in this folder")
    parser.add_argument("--only-volume", action="store_true", help="cases 5 and 6 only")
    options = parser.parse_args()
    python = image_python()
    results = []
    with emulated_world(options.keep) as emulated:
        root = emulated.root
        network = ["--network-volume", "bench-vol", "--volume-gb", "20"]
        cases = [
            ("fresh pod, pip", "pip", "volume-pip", "venv-pip", []),
            ("fresh pod, uv", "uv", "volume-uv", "venv-uv1", []),
            ("new venv, warm uv cache", "uv", "volume-uv", "venv-uv2", []),
            ("--skip-setup, prepared image", "uv", "volume-uv", "venv-uv2", ["--skip-setup"]),
            ("fresh pod, new network volume", "uv", "workspace-nv", "venv-nv1", network),
            ("fresh pod, warm network volume", "uv", "workspace-nv", "venv-nv2", network),
        ]
        if options.only_volume:
            cases = cases[4:]
        for n, (label, installer, volume, venv, extra) in enumerate(cases):
            world = emulated.world(f"case{n}", root / venv)
            if extra == network:  # each pod its own disk; the volume's folder outlives them
                emulated.runpod.use_disks(root / volume, root / "disks")
            else:
                (root / volume).mkdir(exist_ok=True)
            world.write_dotenv(
                THINNKA_POD_INSTALLER=installer,
                THINNKA_POD_PYTHON=str(python),
                THINNKA_REMOTE_ROOT=str(root / volume),
                THINNKA_REMOTE_VENV=str(root / venv),
            )
            results.append(run_case(label, world, emulated.hub, extra))
            print(json.dumps(results[-1]), flush=True)
    print()
    print(f"{'case':32} {'pod alive':>10} {'training':>9} {'not training':>13}")
    for r in results:
        print(f"{r['case']:32} {r['pod_alive_s']:>9}s {r['training_s']:>8}s "
              f"{r['not_training_s']:>12}s")  # fmt: skip


if __name__ == "__main__":
    main()

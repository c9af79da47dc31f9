"""The default setup on each python layout an image may have (issue 19), end to end.

Each test runs ``thinnka run`` on an emulated image (``tests/world/images.py``) whose
``python3`` is one layout, with default settings: the setup builds the trainer venv from that
python with uv (the image's, or bootstrapped), installing the real trl stack from a local
PyPI (wheels re-packed from this environment). Where the image has torch, the venv must import
exactly that torch and uv must install none; without torch, the stack's torch is installed
once, into the venv. A python that cannot start fails the run within seconds, by name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.plugins.thinnka_world import World
from tests.world.images import PodImage, build_image, index_env, wheelhouse
from thinnka.planning.versions import POD_TOOLS, TRL_STACK

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CPU = ["--trainer", "trl", "--set", "use_cpu=true", "--set", "bf16=false",
       "--set", "torch_dtype=float32"]  # fmt: skip
# What the runs below install (SFT on the CPU: QLoRA, so bitsandbytes), the image's torch
# for the layout without one, uv for images that bootstrap it; with all they depend on.
STACK = [
    *(f"{name}=={TRL_STACK[name]}" for name in ("trl", "accelerate", "datasets", "peft")),
    *("transformers", "bitsandbytes", "huggingface_hub", "torch", f"uv=={POD_TOOLS['uv']}"),
]
PROBE = Path(__file__).resolve().parents[2] / "recipes" / "scripts" / "probe_python.py"


@pytest.fixture(scope="session")
def local_pypi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheelhouse(tmp_path_factory.mktemp("local-pypi"), STACK)


def _run(world: World, image: PodImage, *extra: str) -> subprocess.CompletedProcess[str]:
    world.runpod.set_image_env(image.name, image.env)
    return world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "1",
        "--dataset-name", world.hub.datasets.sft, *CPU, "--image", image.name, *extra,
    )  # fmt: skip


def _torch_of(venv: Path) -> tuple[str, Path | None]:
    """(version, folder) of the torch the venv's python imports (found, not imported)."""
    out = subprocess.run(
        [str(venv / "bin" / "python"), str(PROBE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = dict(line.split("\t", 1) for line in out.splitlines())
    return found["torch"], Path(found["torch_dir"]) if found["torch_dir"] else None


def _venv_site(venv: Path) -> Path:
    [site] = (venv / "lib").glob("python3*/site-packages")
    return site


@pytest.mark.parametrize("layout", ["system", "venv", "conda", "no_torch"])
def test_the_default_setup_reuses_the_images_torch_on_every_layout(
    world: World, local_pypi: Path, tmp_path: Path, layout: str
) -> None:
    image = build_image(layout, tmp_path / "image", index=index_env(local_pypi))
    venv = tmp_path / "trainer-venv"  # on the container disk: made by this setup
    world.write_dotenv(THINNKA_REMOTE_VENV=str(venv))
    # The layout trains for real; the others stop once the training started.
    detach = [] if layout == "venv" else ["--detach"]
    result = _run(world, image, *detach)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = result.stdout.split()[1]
    shown = world.show(run_id)
    if detach:
        assert shown["state"] == "training"
        assert world.thinnka("cancel", run_id).returncode == 0
    else:
        assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    log = (Path(shown["remote"]["run_dir"]) / "setup.log").read_text()

    assert f"the image's python is {image.python} " in log, log
    assert f"installing with uv {POD_TOOLS['uv']}" in log  # the default installer
    version, folder = _torch_of(venv)
    if image.torch_site is not None:
        # The image's torch, seen where the image has it; uv installed no other.
        assert (version, folder) == ("2.13.0+cpu", image.torch_site)
        assert "using the image's torch 2.13.0+cpu" in log
        assert " + torch==" not in log
        assert not list(_venv_site(venv).glob("torch-*.dist-info"))
    else:
        # No torch on the image: the stack's, installed once, into the venv.
        assert "without torch" in log and "no torch on the image: the stack's" in log
        assert log.count(" + torch==") == 1
        assert folder == _venv_site(venv) and version == "2.13.0+cpu"


def test_a_python_that_cannot_start_fails_setup_at_once_naming_it(
    world: World, local_pypi: Path, tmp_path: Path
) -> None:
    image = build_image("broken", tmp_path / "image", index=index_env(local_pypi))
    world.write_dotenv(THINNKA_REMOTE_VENV=str(tmp_path / "trainer-venv"))
    result = _run(world, image)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    shown = world.show(result.stdout.split()[1])
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed")
    assert shown["error"]["reason"] == "setup_failed"
    message = shown["error"]["message"]
    assert f"the image's python3 ({image.python}) does not run" in message, message
    assert "No module named 'encodings'" in message
    run_dir = Path(shown["remote"]["run_dir"])
    took = (run_dir / "setup.exit").stat().st_mtime - (run_dir / "setup.pid").stat().st_mtime
    assert took < 10, f"the setup took {took:.1f} s to refuse the image's python"
    # Refused before any download: no uv bootstrapped, nothing in the volume's caches.
    cache = world.remote_root / ".cache"
    assert not (cache / "thinnka-uv").exists() and not (cache / "uv").exists()
    assert not (tmp_path / "trainer-venv").exists()

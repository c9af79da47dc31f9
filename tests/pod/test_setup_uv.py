"""setup_trl.sh's installer: uv where it can be had, pip otherwise, caches on the volume.

Run for real with the uv release thinnka bootstraps on pods, against a local wheel (offline:
no index at all); "a new venv on the same volume installs nothing new" is uv fetching nothing
into its cache the second time (no "Prepared" line): the volume's cache serves the new venv.
On Runpod that is the same pod again (restarted: its container disk is new, its volume kept);
a pod's volume is deleted with the pod.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.plugins.thinnka_world import make_pod_venv
from thinnka.planning.versions import POD_TOOLS, TRL_STACK
from thinnka.rendering import write_env_file

SCRIPTS = Path(__file__).resolve().parents[2] / "recipes" / "scripts"
pytestmark = pytest.mark.timeout(180)


def _wheel(folder: Path, name: str = "thinnka_probe", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel, written by hand (no build backend needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: thinnka-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def _values(venv: Path, cache: Path) -> dict[str, str]:
    return {
        "TRAINER": "trl",
        "VENV": str(venv),
        "STACK_PACKAGES": "thinnka-probe==1.0",
        "TRANSFORMERS_SPEC": "",
        "EXPECT_TRL": TRL_STACK["trl"],
        "THINNKA_CACHE_DIR": str(cache),
        "UV_SPEC": f"=={POD_TOOLS['uv']}",
    }


def _setup(env_file: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "VENV"))}
    full.update(env)
    return subprocess.run(
        ["bash", str(SCRIPTS / "setup_trl.sh"), str(env_file)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=150,
    )


def _uv_on_path() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (it is in the test extra)")
    return uv


def test_uv_installs_and_a_new_venv_on_the_same_volume_downloads_nothing(
    tmp_path: Path,
) -> None:
    _uv_on_path()
    wheels, volume = tmp_path / "wheels", tmp_path / "volume" / ".cache"
    _wheel(wheels)
    # uv has no variable for --no-index; offline it reads only local files (and its cache).
    offline = {"UV_OFFLINE": "1", "UV_FIND_LINKS": str(wheels)}

    first_venv = make_pod_venv(tmp_path / "pod1" / "venv")
    env_file = tmp_path / "first.env"
    env_file.write_text(write_env_file(_values(first_venv, volume)))
    first = _setup(env_file, tmp_path, **offline)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"installing with uv {POD_TOOLS['uv']}" in first.stdout
    assert "trl 1.13.0" in first.stdout and "(imported)" in first.stdout
    probe = [str(first_venv / "bin" / "python"), "-c", "import thinnka_probe"]
    assert subprocess.run(probe, check=False).returncode == 0
    assert any((volume / "uv").iterdir()), "uv's cache is not on the volume"

    assert "Prepared 1 package" in first.stderr  # fetched and unpacked into the cache

    # A new venv (the pod restarted: a new container disk) on the same volume: uv takes
    # the package from the volume's cache and fetches nothing (no "Prepared" line).
    second_venv = make_pod_venv(tmp_path / "pod2" / "venv")
    env_file = tmp_path / "second.env"
    env_file.write_text(write_env_file(_values(second_venv, volume)))
    second = _setup(env_file, tmp_path, **offline)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Installed 1 package" in second.stderr and "Prepared" not in second.stderr
    probe[0] = str(second_venv / "bin" / "python")
    assert subprocess.run(probe, check=False).returncode == 0


def test_without_uv_the_setup_falls_back_to_pip(tmp_path: Path) -> None:
    """No uv on the image and none to be had from PyPI: pip installs, and says so."""
    # Every folder with a uv goes, not only the first one PATH names (a second venv's, say).
    path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "uv").exists()
    )
    wheels, volume = tmp_path / "wheels", tmp_path / "volume" / ".cache"
    _wheel(wheels)
    venv = make_pod_venv(tmp_path / "pod" / "venv")
    env_file = tmp_path / "setup.env"
    env_file.write_text(write_env_file(_values(venv, volume)))
    result = _setup(
        env_file,
        tmp_path,
        PATH=path,
        THINNKA_PYTHON=sys.executable,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uv cannot be installed here; installing with pip" in result.stderr
    assert "thinnka: installing with pip" in result.stdout
    assert not (volume / "thinnka-uv").exists()  # a failed bootstrap leaves nothing behind


def test_the_uv_pin_is_the_one_the_tests_run() -> None:
    """POD_TOOLS is the one place the pods' uv is pinned; the test extra must agree."""
    uv = _uv_on_path()
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split()[1] == POD_TOOLS["uv"]

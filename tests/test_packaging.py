"""The wheel works outside the checkout: it carries recipes/ and migrations/."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_the_wheel_carries_its_data_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    wheel = next(dist.glob("thinnka-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "thinnka/_data/migrations/env.py",
        "thinnka/_data/migrations/versions/0001_initial.py",
        "thinnka/_data/recipes/templates/trl_sft.yaml",
        "thinnka/_data/recipes/scripts/job.sh",
        "thinnka/_data/recipes/schema/trl_grpo.json",
    ):
        assert expected in names, expected
    assert any(n.endswith("entry_points.txt") for n in names)

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        f"import sys; sys.path.insert(0, {str(site)!r}); import thinnka, thinnka.resources as r;"
        f"assert thinnka.__file__.startswith({str(site)!r}), thinnka.__file__;"
        "assert '_data' in str(r.resource_dir('recipes')), r.resource_dir('recipes');"
        "sys.argv = ['thinnka', 'ls', '--json']; from thinnka.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == []
    assert (elsewhere / "state" / "thinnka.db").exists()  # migrations ran from the wheel

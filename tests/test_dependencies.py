"""Every runtime dependency is pinned to a major, and the one installed here is inside it.

Run in each venv of `.ci/run` (the main one with huggingface_hub 1.x, the small one with
2.x), this shows that the pins are exactly what the suite exercises.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = [
    Requirement(line)
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
]


@pytest.mark.parametrize("requirement", RUNTIME, ids=lambda r: r.name)
def test_each_runtime_dependency_has_a_bounded_major_that_is_installed(
    requirement: Requirement,
) -> None:
    assert any(spec.operator == "<" for spec in requirement.specifier), requirement
    assert any(spec.operator == ">=" for spec in requirement.specifier), requirement
    installed = metadata.version(requirement.name)
    assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)

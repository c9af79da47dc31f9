"""CI runs the README's test command (README "Development"), with its pytest-xdist workers."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^(python -m pytest\b[^#\n]*)", text, re.M)}


def test_ci_runs_the_readmes_test_command() -> None:
    readme = _commands((ROOT / "README.md").read_text())
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert readme == {"python -m pytest -n 4 --dist worksteal"}, readme
    assert readme <= ci, (readme, ci)
    quick_start = re.search(
        r'-e "\.\[test\]" && (python -m pytest[^\n]*)', (ROOT / "README.md").read_text()
    )
    assert quick_start is not None and quick_start.group(1).strip() in readme

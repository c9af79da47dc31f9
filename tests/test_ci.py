"""CI runs the README's test command (README "Development"), with its pytest-xdist workers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


class _Item:
    def __init__(self, name: str, slow: bool) -> None:
        self.name, self.slow = name, slow

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "slow" and self.slow else None


def test_under_xdist_each_workers_share_starts_with_its_part_of_the_slow_tests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.conftest import pytest_collection_modifyitems

    items = [_Item(f"f{i}", False) for i in range(6)] + [_Item(f"s{i}", True) for i in range(4)]
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    ordered = list(items)
    pytest_collection_modifyitems(None, ordered)  # type: ignore[arg-type]
    # Two equal, contiguous shares (what the work-stealing scheduler hands out first).
    assert [i.name for i in ordered] == ["s0", "s2", "f0", "f2", "f4", "s1", "s3", "f1", "f3", "f5"]
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    unchanged = list(items)
    pytest_collection_modifyitems(None, unchanged)  # type: ignore[arg-type]
    assert unchanged == items  # a plain run keeps file order

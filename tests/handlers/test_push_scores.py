"""Scores of a run whose pod ended before thinnka read them: the final-push marker has them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.handlers.test_push import RUN_ID, _ctx
from tests.world.hub import FakeHub
from thinnka.handlers import push
from thinnka.pod.scores import collect_marker_scores
from thinnka.store.score_table import Score

SCRIPTS = Path(__file__).resolve().parents[2] / "recipes" / "scripts"
SCORES = {"split": "2 held-out rows", "rows": 2, "before": {"reward": 0.25},
          "after": {"reward": 0.5}}  # fmt: skip


def test_the_marker_carries_the_pods_scores(tmp_path: Path) -> None:
    (tmp_path / "thinnka_mark.py").write_text((SCRIPTS / "thinnka_mark.py").read_text())
    spec = importlib.util.spec_from_file_location("mark", tmp_path / "thinnka_mark.py")
    assert spec is not None and spec.loader is not None
    mark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mark)
    assert "scores" not in json.loads(mark.marker(RUN_ID, "abc", "train", None))
    (tmp_path / "scores.json").write_text(json.dumps(SCORES))
    assert json.loads(mark.marker(RUN_ID, "abc", "train", None))["scores"] == SCORES


def test_a_pod_gone_run_records_the_scores_from_the_marker(fake_hub: FakeHub) -> None:
    fake_hub.reset()
    repo_id = fake_hub.models.chat
    marker = {"run_id": RUN_ID, "step": 2, "scores": SCORES}
    fake_hub.upload(repo_id, {push.RUN_MARKER: json.dumps(marker).encode()})
    saved: dict[str, Any] = {}
    events: list[str] = []
    ctx = _ctx(fake_hub, repo_id)
    ctx.save = lambda **facts: saved.update(facts)
    ctx.output = SimpleNamespace(event=lambda name, message, **_: events.append(message))
    found = collect_marker_scores(ctx, push.RUN_MARKER)  # type: ignore[arg-type]
    assert found == saved["scores"] == [Score("reward", 0.25, 0.5, "2 held-out rows", 2)]
    assert events == ["Eval scores: reward 0.25 → 0.5 on 2 held-out rows."]


@pytest.mark.parametrize("marker", [{"run_id": RUN_ID}, None])
def test_no_scores_in_the_marker_records_none(fake_hub: FakeHub, marker: Any) -> None:
    fake_hub.reset()
    repo_id = fake_hub.models.chat
    if marker is not None:
        fake_hub.upload(repo_id, {push.RUN_MARKER: json.dumps(marker).encode()})
    ctx = _ctx(fake_hub, repo_id)
    ctx.save = lambda **facts: pytest.fail("nothing to save")
    ctx.output = SimpleNamespace(event=lambda *a, **k: None)
    assert collect_marker_scores(ctx, push.RUN_MARKER) == []  # type: ignore[arg-type]

"""Evaluation scores per run: written with the run's facts, read back per run and for ls."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinnka.errors import StateConflict
from thinnka.options import RunOptions
from thinnka.settings import load_settings
from thinnka.store import Store, open_store
from thinnka.store.score_table import Score, scores_from_file


def _store(folder: Path) -> Store:
    return open_store(load_settings(environ={"THINNKA_STATE_DIR": str(folder)}, cwd=folder))


POD_FILE = {  # recipes/scripts/thinnka_eval.py's scores.json
    "split": "10 held-out rows",
    "rows": 10,
    "before": {"eval_loss": 2.5, "perplexity": 12.18},
    "after": {"eval_loss": 1.5, "perplexity": 4.48, "token_accuracy": 0.5},
}


def test_the_pods_file_becomes_scores() -> None:
    scores = scores_from_file(POD_FILE)
    assert [s.name for s in scores] == ["eval_loss", "perplexity", "token_accuracy"]
    assert scores[0] == Score("eval_loss", 2.5, 1.5, "10 held-out rows", 10)
    assert scores[2].before is None and scores[0].change == -1.0
    assert scores[0].describe() == "eval_loss 2.5 → 1.5"
    assert scores_from_file({"before": {"x": "not a number"}}) == []


@pytest.mark.usefixtures("db_backend")
def test_scores_are_recorded_with_the_lease_and_replaced(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(), owner="me")
    other = store.create_run(RunOptions(hub_model_id="me/other"), owner="me")
    store.record(run.id, owner="me", updates={"scores": scores_from_file(POD_FILE)})
    assert [s.name for s in store.scores.of(run.id)] == [
        "eval_loss",
        "perplexity",
        "token_accuracy",
    ]
    store.record(run.id, owner="me", updates={"scores": scores_from_file(POD_FILE)[:1]})
    assert store.scores.of(run.id) == [Score("eval_loss", 2.5, 1.5, "10 held-out rows", 10)]
    assert store.scores.of_runs([run.id, other.id]) == {
        run.id: store.scores.of(run.id), other.id: []
    }  # fmt: skip
    with pytest.raises(StateConflict):  # not the lease holder: nothing written
        store.record(other.id, owner="someone", updates={"scores": scores_from_file(POD_FILE)})
    assert store.scores.of(other.id) == []

"""The report's "Data and evaluation" part: the local data set and the scores, escaped."""

from __future__ import annotations

import datetime as dt

from thinnka.report import ReportData, render_report

RUN = {
    "id": "r-1", "repo_id": "org/m", "state": "terminated", "outcome": "succeeded",
    "created_at": "2026-12-07T10:00:00+00:00", "ended_at": "2026-12-07T10:30:00+00:00",
    "events": [], "plan": {},
    "data": [{"role": "train", "path": "/home/me/<chats>.jsonl", "sha256": "ab" * 32,
              "rows": 1200, "bytes": 10, "columns": ["messages"], "format": "json"}],
    "scores": [{"name": "eval_loss", "before": 2.5, "after": 1.25, "split": "60 held-out rows",
                "rows": 60}, {"name": "token_accuracy", "before": None, "after": 0.5,
                              "split": "60 held-out rows", "rows": 60}],
}  # fmt: skip


def test_the_report_tables_the_data_and_the_scores() -> None:
    page = render_report(ReportData(run=RUN, series={}, generated_at=dt.datetime.now(dt.UTC)))
    assert "<h2>Data and evaluation</h2>" in page
    assert "/home/me/&lt;chats&gt;.jsonl (1,200 rows, sha256 " + "ab" * 32 in page
    assert "On 60 held-out rows" in page
    assert "<td>eval_loss</td><td>2.5</td><td>1.25</td><td>-1.25</td>" in page
    assert "<td>token_accuracy</td><td>-</td><td>0.5</td><td>-</td>" in page


def test_a_run_without_data_or_scores_has_no_such_part() -> None:
    bare = {**RUN, "data": [], "scores": []}
    page = render_report(ReportData(run=bare, series={}, generated_at=dt.datetime.now(dt.UTC)))
    assert "Data and evaluation" not in page

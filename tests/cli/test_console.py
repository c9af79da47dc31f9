"""What a person sees: the live view on a terminal, the ls table, show's curves."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from thinnka.cli import app
from thinnka.cli.console import ConsoleOutput
from thinnka.cli.curves import sparkline
from thinnka.cli.exit_codes import run_app
from thinnka.events.metrics import ingest_metrics
from thinnka.machine import RunState
from thinnka.options import RunOptions
from thinnka.settings import load_settings
from thinnka.store import Store, open_store

DATA = Path(__file__).parents[1] / "data"


def _store(workdir: Path) -> Store:
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(workdir / "state")}, cwd=workdir)
    return open_store(settings)


def _training_run(store: Store) -> str:
    run = store.create_run(RunOptions(repo_id="org/m", sft=True), owner="me")
    for source, dest in ((RunState.created, RunState.gated), (RunState.gated, RunState.estimated)):
        store.transition(run.id, owner="me", source=source, dest=dest, trigger="t")
    pod = {"pod_id": "pod123", "gpu_type": "NVIDIA L40S", "gpu_count": 1, "cost_per_hr": 0.86}
    store.transition(run.id, owner="me", source=RunState.estimated, dest=RunState.provisioned,
                     trigger="provision", updates=pod)  # fmt: skip
    return run.id


def test_the_live_view_shows_state_pod_gpu_cost_progress_and_loss(workdir: Path) -> None:
    store = _store(workdir)
    run_id = _training_run(store)
    screen = io.StringIO()
    output = ConsoleOutput(live=True)
    output.out = Console(file=screen, force_terminal=True, width=160, color_system=None)
    output.attach(store, run_id)
    output.event("train_start", "Starting SFT training.")
    output.line("train", "{'loss': '0.4321', 'epoch': '0.5'}")
    output.progress("train", 7, 20, " 35%|███▌      | 7/20 [00:07<00:13,  1.00it/s]")
    output.close()
    text = screen.getvalue()
    for expected in ("Starting SFT training.", "[train] {'loss'", run_id, "provisioned",
                     "pod pod123", "1× NVIDIA L40S", "so far", "7/20", "ETA 00:13",
                     "loss 0.4321"):  # fmt: skip
        assert expected in text, expected


def test_on_a_narrow_terminal_the_status_line_wraps_whole_and_the_last_frame_is_fresh(
    workdir: Path,
) -> None:
    """A live render on the soft-wrapping console was cropped at the width (the pod id and
    cost cut off); and the last frame showed the state of up to a second before the end."""
    store = _store(workdir)
    run_id = _training_run(store)
    screen = io.StringIO()
    output = ConsoleOutput(live=True)
    output.out = Console(file=screen, force_terminal=True, width=40, color_system=None,
                         soft_wrap=True)  # fmt: skip
    output.attach(store, run_id)
    output.echo(f"run {run_id}")
    store.transition(run_id, owner="me", source=RunState.provisioned, dest=RunState.failed,
                     trigger="fail")  # fmt: skip
    output.close()
    last = screen.getvalue().rsplit("\x1b[2K", 1)[-1]  # the frame close() drew
    words = " ".join(last.split())
    assert f"{run_id} failed pod pod123 1× NVIDIA L40S" in words, last
    assert "$0.0000 so far" in words, last
    assert f"run {run_id}\n" in screen.getvalue()


def test_not_a_terminal_gets_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    output = ConsoleOutput()
    output.line("train", "hello")
    output.progress("train", 20, 20, "100%|██████████| 20/20 [00:20<00:00]")
    output.progress("train", 5, 9, "Map:  55%|█████     | 5/9 [00:01<00:01]")
    output.close()
    captured = capsys.readouterr()
    assert captured.out == "[train] hello\n" and "step 20/20" in captured.err
    assert "5/9" not in captured.err


def test_ls_is_a_table_with_mode_state_gpu_cost_and_age(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _training_run(_store(workdir))
    assert run_app(app, ["ls"]) == 0
    out = capsys.readouterr().out
    for expected in ("id", "model", "mode", "state", "gpu", "cost", "age", run_id, "org/m", "sft",
                     "provisioned", "NVIDIA L40S"):  # fmt: skip
        assert expected in out, expected
    assert run_app(app, ["ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == run_id


def test_show_prints_curves_and_pending_events(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(workdir)
    run_id = _training_run(store)
    local = workdir / "state" / "runs" / run_id / "remote.log"
    local.parent.mkdir(parents=True)
    shutil.copy(DATA / "trl_grpo_remote.log", local)
    ingest_metrics(store.metrics, run_id, local)
    (workdir / ".env").write_text("PROGRESS_WEBHOOK_URL=http://127.0.0.1:9/hook\n")
    assert run_app(app, ["show", run_id]) == 0
    out = capsys.readouterr().out
    assert "webhook   4 events pending, 0 delivered" in out
    assert "learning_rate" in out and "rewards/format_reward/mean" in out and "4 steps" in out
    assert run_app(app, ["show", run_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outbox"]["webhook"]["pending"] == 4 and "reward" in data["metrics"]


def test_sparkline_scales_and_samples() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3, 3]) == "▅▅▅"
    assert len(sparkline(list(range(1000)), width=40)) == 40

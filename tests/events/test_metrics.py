"""Metrics parsed from real trainer output of both trainers' stacks (tests/data/README.md)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from thinnka.events.metrics import (
    MAIN_METRICS,
    ingest_metrics,
    logged_step,
    parse_metrics,
    read_metric_lines,
)
from thinnka.options import RunOptions
from thinnka.settings import load_settings
from thinnka.store import Store, open_store

DATA = Path(__file__).parents[1] / "data"


def test_sft_output_gives_loss_learning_rate_grad_norm_and_epoch_per_step() -> None:
    lines = read_metric_lines(DATA / "trl_sft_remote.log", 0)
    assert len(lines) == 4  # max_steps 4, logging_steps 1; the run summary is no step
    first = lines[0].values
    assert first["loss"] == 5.993 and first["learning_rate"] == 0.0002
    assert first["grad_norm"] == 0.3848 and first["epoch"] == 0.125
    assert [line.values["epoch"] for line in lines] == [0.125, 0.25, 0.375, 0.5]
    assert all(line.stage == "train" for line in lines)


def test_grpo_output_gives_reward_each_reward_function_kl_and_completion_length() -> None:
    lines = read_metric_lines(DATA / "trl_grpo_remote.log", 0)
    assert len(lines) == 4
    values = lines[0].values
    for name in (
        "reward",
        "reward_std",
        "rewards/accuracy_reward/mean",
        "rewards/format_reward/mean",
        "rewards/tag_count_reward/mean",
        "completions/mean_length",
        "loss",
        "learning_rate",
        "grad_norm",
        "epoch",
    ):
        assert name in values, name  # fmt: skip
    assert values["completions/mean_length"] == 16.0
    assert lines[1].values["learning_rate"] == 1e-06


def test_older_trl_numbers_and_kl_are_read_and_other_dicts_are_not() -> None:
    assert parse_metrics("{'loss': 0.5, 'kl': 0.01, 'completion_length': 12.5}") == {
        "loss": 0.5, "kl": 0.01, "completion_length": 12.5,
    }  # fmt: skip
    assert parse_metrics("{'train_runtime': 1.0, 'train_loss': 2.0}") is None
    assert parse_metrics("{'bos_token_id': 1, 'eos_token_id': 2}") is None
    assert parse_metrics("{'loss': __import__('os')}") is None
    assert parse_metrics("not a dict") is None


def test_resume_stores_each_step_once_from_the_bytes_kept(tmp_path: Path) -> None:
    store = open_store(load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path))
    run = store.create_run(RunOptions())
    full = (DATA / "trl_grpo_remote.log").read_bytes()
    local = tmp_path / "remote.log"
    local.write_bytes(full[: len(full) // 2])  # the process died halfway
    first = ingest_metrics(store.metrics, run.id, local)
    shutil.copy(DATA / "trl_grpo_remote.log", local)  # resume appends the rest
    second = ingest_metrics(store.metrics, run.id, local)
    assert (first, second) == (2, 2)
    series = store.metrics.series(run.id)
    assert [step for step, _ in series["reward"]] == [1, 2, 3, 4]


def test_only_the_trainers_own_bar_counts_as_steps() -> None:
    from thinnka.events.metrics import is_step_bar

    assert is_step_bar(" 35%|███▌      | 7/20 [00:07<00:13,  1.00it/s]")
    assert not is_step_bar("Loading weights: 100%|██████████| 26/26 [00:00<00:00]")
    assert not is_step_bar("Tokenizing train dataset:   0%|          | 0/8 [00:00<?, ?it/s]")


# What TRL 0.18's GRPOTrainer logs per step under Open R1 (its default beta 0.04 adds kl),
# with Open R1's default rewards accuracy, format and tag_count (rewards/<__name__>/...).
OPENR1_GRPO_KEYS = (
    "loss", "grad_norm", "learning_rate", "num_tokens", "epoch", "kl",
    "reward", "reward_std", "frac_reward_zero_std",
    "rewards/accuracy_reward/mean", "rewards/accuracy_reward/std",
    "rewards/format_reward/mean", "rewards/format_reward/std",
    "rewards/tag_count_reward/mean", "rewards/tag_count_reward/std",
    "completions/mean_length", "completions/min_length", "completions/max_length",
    "completions/clipped_ratio", "completions/mean_terminated_length",
    "completions/min_terminated_length", "completions/max_terminated_length",
    "clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max",
    "clip_ratio/region_mean",
)  # fmt: skip


def test_open_r1_stack_grpo_gives_every_metric_it_logs_and_nothing_else() -> None:
    lines = read_metric_lines(DATA / "openr1_stack_grpo_remote.log", 0)
    # 4 steps; not the run summary, the completions tables, the config dumps or bar lines
    assert len(lines) == 4
    for line in lines:
        assert set(line.values) == set(OPENR1_GRPO_KEYS), set(line.values) ^ set(OPENR1_GRPO_KEYS)
        assert set(MAIN_METRICS) <= set(line.values)
    assert [line.values["epoch"] for line in lines] == [0.03, 0.06, 0.09, 0.12]
    assert lines[3].values["learning_rate"] == 3.250000000000001e-07  # unquoted floats


def test_open_r1_stack_sft_steps_follow_logging_steps_and_the_first_step() -> None:
    """logging_steps 2 with logging_first_step: the dicts are steps 1, 2 and 4, as the
    trainer's own epoch says (16 steps an epoch); they were stored as 2, 4 and 6."""
    lines = read_metric_lines(DATA / "openr1_stack_sft_remote.log", 0)
    assert [sorted(line.values) for line in lines] == [
        ["epoch", "grad_norm", "learning_rate", "loss", "mean_token_accuracy", "num_tokens"]
    ] * 3
    assert lines[0].values["loss"] == 5.8069 and lines[1].values["learning_rate"] == 0.0002
    with _store_for(DATA / "openr1_stack_sft_remote.log", every=2) as (store, run_id):
        epochs = store.metrics.series(run_id)["epoch"]
    assert [step for step, _ in epochs] == [1, 2, 4]
    assert [round(step / 16, 2) for step, _ in epochs] == [value for _, value in epochs]


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("trl_sft", {"loss", "learning_rate", "grad_norm", "epoch"}),
        ("trl_grpo", {"loss", "reward", "learning_rate", "grad_norm", "completions/mean_length"}),
        ("openr1_stack_sft", {"loss", "learning_rate", "grad_norm", "epoch"}),
        ("openr1_stack_grpo", set(MAIN_METRICS) | {"rewards/format_reward/mean"}),
    ],
)
def test_both_trainers_outputs_become_curves(capture: str, expected: set[str]) -> None:
    with _store_for(DATA / f"{capture}_remote.log", every=1) as (store, run_id):
        series = store.metrics.series(run_id)
    assert expected <= series.keys(), expected - series.keys()
    assert all(len(points) in (3, 4) for points in series.values())


def test_the_nth_logged_dict_is_its_training_step() -> None:
    assert [logged_step(n, 10) for n in (1, 2, 3)] == [1, 10, 20]
    assert [logged_step(n, 10, first_step_logged=False) for n in (1, 2, 3)] == [10, 20, 30]
    assert [logged_step(n, 1) for n in (1, 2, 3)] == [1, 2, 3]


@contextmanager
def _store_for(capture: Path, *, every: int) -> Iterator[tuple[Store, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = open_store(load_settings(environ={"THINNKA_STATE_DIR": tmp}, cwd=folder))
        run = store.create_run(RunOptions())
        local = folder / "remote.log"
        shutil.copy(capture, local)
        ingest_metrics(store.metrics, run.id, local, every=every)
        yield store, run.id


def test_logging_first_step_comes_from_the_overrides() -> None:
    from thinnka.events.notify import logging_first_step

    assert logging_first_step(()) is True  # what the recipes set
    assert logging_first_step((("logging_first_step", "false"),)) is False
    assert logging_first_step((("logging_first_step", "True"),)) is True


_SCORED_LOG = (
    '[train] thinnka: eval at step 0: {"eval_loss": 6.0, "perplexity": 403.4}\n'
    "[train] {'loss': '5.9', 'epoch': '0.1'}\n"
    "[train] {'loss': '5.8', 'epoch': '0.2'}\n"
    # transformers prints the evaluation's own dict too; it has no step, and counted as a
    # logged step it would shift every later one.
    "[train] {'eval_loss': '5.7', 'eval_runtime': '0.1', 'epoch': '0.2'}\n"
    '[train] thinnka: eval at step 2: {"eval_loss": 5.7, "perplexity": 298.9}\n'
    "[train] {'loss': '5.6', 'epoch': '0.3'}\n"
    '[train] thinnka: eval at step 3: {"eval_loss": 5.5, "perplexity": NaN, "note": "x"}\n'
)


def test_eval_scores_keep_their_steps_and_never_shift_the_training_steps(tmp_path: Path) -> None:
    assert parse_metrics("{'eval_loss': '5.7', 'eval_runtime': '0.1', 'epoch': '0.2'}") is None
    store = open_store(load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path))
    run = store.create_run(RunOptions())
    local = tmp_path / "remote.log"
    cut = _SCORED_LOG.index("[train] {'loss': '5.6'")
    local.write_text(_SCORED_LOG[:cut])  # the orchestrator died here; resume reads the rest
    assert ingest_metrics(store.metrics, run.id, local) == 4
    local.write_text(_SCORED_LOG)
    assert ingest_metrics(store.metrics, run.id, local) == 2
    series = store.metrics.series(run.id)
    assert series["loss"] == [(1, 5.9), (2, 5.8), (3, 5.6)]
    assert series["eval/eval_loss"] == [(0, 6.0), (2, 5.7), (3, 5.5)]
    assert [step for step, _ in series["eval/perplexity"]] == [0, 2]  # NaN is not a point
    assert "eval_loss" not in series and "eval/note" not in series

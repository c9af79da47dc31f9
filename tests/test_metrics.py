"""Metrics parsed from real TRL output, captured from the CPU end-to-end runs (tests/data)."""

from __future__ import annotations

import shutil
from pathlib import Path

from thinnka.metrics import parse_metrics, read_metric_lines
from thinnka.options import RunOptions
from thinnka.settings import load_settings
from thinnka.store import open_store

DATA = Path(__file__).parent / "data"


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
    first = store.metrics.ingest(run.id, local)
    shutil.copy(DATA / "trl_grpo_remote.log", local)  # resume appends the rest
    second = store.metrics.ingest(run.id, local)
    assert (first, second) == (2, 2)
    series = store.metrics.series(run.id)
    assert [step for step, _ in series["reward"]] == [1, 2, 3, 4]


def test_only_the_trainers_own_bar_counts_as_steps() -> None:
    from thinnka.metrics import is_step_bar

    assert is_step_bar(" 35%|███▌      | 7/20 [00:07<00:13,  1.00it/s]")
    assert not is_step_bar("Loading weights: 100%|██████████| 26/26 [00:00<00:00]")
    assert not is_step_bar("Tokenizing train dataset:   0%|          | 0/8 [00:00<?, ?it/s]")

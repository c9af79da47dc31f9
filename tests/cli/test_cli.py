"""The command-line contract: names, help, exit codes, nothing created on bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from thinnka.cli import app
from thinnka.cli.exit_codes import run_app
from thinnka.cli.flags import RUN_OPTIONS
from thinnka.settings import load_settings
from thinnka.store import open_store

COMMANDS = {"run", "plan", "resume", "cancel", "ls", "show", "logs", "report", "reap", "recover",
            "gpus", "doctor"}  # fmt: skip


def _click() -> Any:
    """The command group typer builds (typer vendors its own click)."""
    return typer.main.get_command(app)


def test_every_command_exists_and_has_help() -> None:
    group = _click()
    assert set(group.commands) == COMMANDS
    for name, command in group.commands.items():
        assert command.help and len(command.help.strip()) > 20, name
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.opts} has no help"


def test_run_and_plan_share_the_original_options() -> None:
    group = _click()
    for name in ("run", "plan"):
        opts = {o for p in group.commands[name].params for o in p.opts + p.secondary_opts}
        for spec in RUN_OPTIONS:
            for flag in spec.flags:
                for part in flag.split("/"):
                    if part.strip():
                        assert part.strip() in opts, (name, part)
    aliases = {o for p in group.commands["run"].params for o in p.opts + p.secondary_opts}
    assert {"--no-vllm", "--disable-vllm", "--discord-webhook", "--set"} <= aliases


def test_every_run_option_has_one_flag_whose_default_is_the_options_own() -> None:
    """RunOptions is the one definition: the flags given nothing build exactly its defaults."""
    from dataclasses import fields

    from thinnka.cli.flags import options_from_kwargs
    from thinnka.options import RunOptions

    command = _click().commands["run"]
    parsed = command.make_context("run", [], resilient_parsing=True).params
    flagged = {spec.name for spec in RUN_OPTIONS}
    # flag_sinks is not a flag: thinnka records which sink URLs came by flag.
    assert flagged == {f.name for f in fields(RunOptions)} - {"flag_sinks"}
    assert options_from_kwargs({name: parsed[name] for name in flagged}) == RunOptions()


def test_an_option_typed_as_a_literal_refuses_other_values() -> None:
    from thinnka.cli.flags import options_from_kwargs
    from thinnka.errors import ConfigError

    values = {spec.name: spec.default for spec in RUN_OPTIONS}
    for name, bad in (("cloud_type", "CHEAP"), ("trainer", "axolotl"), ("gpu_strategy", "x")):
        with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} must be one of"):
            options_from_kwargs({**values, name: bad})


def test_help_runs_as_a_real_program(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "thinnka", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


def test_ls_json_in_an_empty_folder_creates_a_private_database(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_app(app, ["ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    database = workdir / "state" / "thinnka.db"
    assert stat.S_IMODE(os.stat(database).st_mode) == 0o600


def _runs_in(folder: Path) -> int:
    if not (folder / "state" / "thinnka.db").exists():
        return 0
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(folder / "state")}, cwd=folder)
    return open_store(settings).count_runs()


VALID_KEYS = ["RUNPOD_API_KEY=rpa_test", "HF_TOKEN=hf_test"]

BAD_INPUT = [
    (["--answer-tag", "<a>"], "Answer tags must include both start and end or be empty."),
    (["--reasoning-end-tag", ""], "Reasoning tags must include both start and end"),
    (["--gpu-count", "3"], "GPU count must be one of 1, 2, 4, 6, 8."),
    (["--dataset-fraction", "0"], "--dataset-fraction must be between 0 and 1"),
    (["--dataset-fraction", "1.5"], "--dataset-fraction must be between 0 and 1"),
    (["--merge-model"], "--merge-model is only supported with SFT mode"),
    (["--sft", "--merge-model", "--shard-model"], "--merge-model is not supported with --shard"),
    (["--sft", "--use-vllm"], "--use-vllm only applies to GRPO"),
    (["--skip-setup", "--custom-dependencies", "protobuf"], "--skip-setup installs nothing"),
    (["--skip-setup", "--transformers-version", "4.52.3"], "--skip-setup installs nothing"),
    (["--custom-dependencies", "ok,$(rm -rf /)"], "not a valid requirement specifier"),
    (["--transformers-version", "latest"], "is not a version"),
    (["--repo-id", "bad repo; rm"], "is not a valid Hub repo id"),
    (["--vllm-mode", "remote"], "--vllm-mode must be 'colocate' or 'server'"),
    (["--no-vllm", "--vllm-mode", "server"], "--vllm-mode needs vLLM"),
    (["--vllm-mode", "server"], "needs --gpu-count 2 or more"),
    (["--cloud-type", "MOON"], "--cloud-type must be one of"),
    (["--trainer", "axolotl"], "--trainer must be one of"),
    (["--per-device-train-batch", "0"], "--per-device-train-batch must be 1 or more"),
    (["--num-generations", "1"], "--num-generations must be at least 2"),
    (["--max-steps", "0"], "--max-steps must be a positive number"),
    (["--deepspeed-stage", "1"], "--deepspeed-stage must be 2 or 3"),
    (["--max-price", "0"], "--max-price must be a price above 0"),
    (["--set", "novalue"], "--set expects KEY=VALUE"),
    (["--report-to", "mlflow"], "--report-to must be one of"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[m[:30] for _, m in BAD_INPUT])
def test_every_validation_error_exits_2_and_creates_no_run(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (workdir / ".env").write_text("\n".join(VALID_KEYS) + "\n")
    assert run_app(app, ["run", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert _runs_in(workdir) == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ([], "RUNPOD_API_KEY is required."),
        (["RUNPOD_API_KEY=rpa_x"], "HF_TOKEN or HUGGINGFACE_HUB_TOKEN is required."),
        (VALID_KEYS, "SSH public key not found."),
        ([*VALID_KEYS, "SSH_PUBLIC_KEY=ssh-ed25519 AAAA test"], "SSH private key not found"),
        ([*VALID_KEYS, "SSH_PUBLIC_KEY=ssh-ed25519 AAAA test", "SSH_PRIVATE_KEY_PATH=/nope/key"],
         "SSH private key not found: /nope/key"),
    ],
)  # fmt: skip
def test_missing_credentials_exit_2_before_anything_exists(
    workdir: Path, capsys: pytest.CaptureFixture[str], env: list[str], message: str
) -> None:
    (workdir / ".env").write_text("\n".join(env) + "\n")
    assert run_app(app, ["run", "--repo-id", "org/model"]) == 2
    assert message in capsys.readouterr().err
    assert _runs_in(workdir) == 0


def test_report_to_wandb_needs_its_key(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / ".env").write_text("\n".join(VALID_KEYS) + "\n")
    assert run_app(app, ["run", "--report-to", "wandb"]) == 2
    assert "--report-to wandb needs WANDB_API_KEY" in capsys.readouterr().err
    assert _runs_in(workdir) == 0


def test_show_of_an_unknown_run_is_a_clear_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_app(app, ["show", "r-zzzzzz"]) == 2
    assert "No run 'r-zzzzzz'" in capsys.readouterr().err


def test_resume_of_a_run_driven_elsewhere_exits_1_naming_the_holder(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from thinnka.options import RunOptions

    settings = load_settings(environ={"THINNKA_STATE_DIR": str(workdir / "state")}, cwd=workdir)
    run = open_store(settings).create_run(RunOptions(), owner="host:4242:abc", lease_seconds=300)
    assert run_app(app, ["resume", run.id]) == 1
    assert "host:4242:abc" in capsys.readouterr().err


def test_show_json_has_the_documented_fields(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from thinnka.options import RunOptions

    settings = load_settings(environ={"THINNKA_STATE_DIR": str(workdir / "state")}, cwd=workdir)
    run = open_store(settings).create_run(RunOptions(repo_id="org/m"))
    assert run_app(app, ["show", run.id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("id", "state", "outcome", "pod_id", "gpu_type", "gpu_count", "cost_usd",
                "repo_id", "hub_model_id", "error", "events"):  # fmt: skip
        assert key in data
    assert data["events"][0].keys() >= {"at", "from", "to", "message"}


def test_parsing_the_run_options_imports_no_pydantic(tmp_path: Path) -> None:
    """typer 0.29 built a pydantic TypeAdapter per option on every invocation (about 70 ms
    before a run could start); the pinned typer parses with its vendored click alone."""
    script = (
        "import sys\n"
        "from thinnka.cli import app\n"
        "from thinnka.cli.exit_codes import run_app\n"
        "code = run_app(app, ['run', '--repo-id', 'not a repo', '--max-steps', '3', '--sft'])\n"
        "print(code, 'pydantic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert "is not a valid Hub repo id" in result.stderr

"""What `thinnka run` does before it opens the database: refusals leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinnka.cli import app
from thinnka.cli.exit_codes import run_app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu-count", "3"], "GPU count must be one of 1, 2, 4, 6, 8."),
        (["--set", "novalue"], "--set expects KEY=VALUE"),
        ([], "SSH public key not found."),  # the keys are checked before the database too
    ],
    ids=["option", "--set", "ssh key"],
)
def test_a_refused_run_leaves_no_database(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    state = workdir / "state"
    (workdir / ".env").write_text(
        f"RUNPOD_API_KEY=rpa_test\nHF_TOKEN=hf_test\nTHINNKA_STATE_DIR={state}\n"
    )
    assert run_app(app, ["run", "--repo-id", "org/model", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (state / "thinnka.db").exists()

"""`thinnka run` end to end: emulated Runpod and Hub, a real sshd pod, real CPU training."""

from __future__ import annotations

import pytest

from tests.plugins.thinnka_world import World

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CPU = ["--trainer", "trl", "--set", "use_cpu=true", "--set", "bf16=false",
       "--set", "torch_dtype=float32"]  # fmt: skip


def _run_id(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("run r-"), stdout[:500]
    return first.split()[1]


def test_sft_run_trains_pushes_and_terminates(world: World) -> None:
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "2",
        "--dataset-name", world.hub.datasets.sft, *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = _run_id(result.stdout)
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert shown["cost_usd"] > 0
    ledger = world.runpod.ledger()
    assert len(ledger) == 1 and ledger[0].terminated_at is not None
    commits = world.hub.commits(shown["hub_model_id"])
    assert commits, "nothing was pushed"
    assert "[train]" in result.stdout

"""A ``--nodes`` run's cluster as the follow step watches it: the real provision step creates
the cluster on the emulated account (stopping at ``provisioned``: no SSH), then the check the
follow loop runs asks the API about every node but rank 0."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.handlers.test_provision import _runner
from tests.plugins.hub_world import HubEnv
from tests.world.runpod import FakeRunpod
from thinnka.errors import RemoteError
from thinnka.machine import RunState
from thinnka.options import RunOptions
from thinnka.pod.alive import LostNodes
from thinnka.step import StepContext

pytestmark = pytest.mark.timeout(120)


def test_a_lost_node_is_noticed_from_the_api_while_rank_0_is_followed(
    tmp_path: Path, runpod_account: FakeRunpod, hub_env: HubEnv
) -> None:
    runner, output = _runner(tmp_path, runpod_account, hub_env, "rest")
    options = RunOptions(repo_id=hub_env.hub.models.chat, sft=True, trainer="trl", nodes=2,
                         gpu_count=8)  # fmt: skip
    run = runner.drive(runner.create(options).id, stop_at=RunState.provisioned)
    assert run.cluster_id is not None and len(run.cluster_nodes) == 2
    ctx = StepContext(
        run=run, settings=runner.settings, services=runner.services, output=output,
        deadline=time.monotonic() + 60, record=lambda facts: run, note=lambda kind, text: None,
        check_cancelled=lambda: None,
    )  # fmt: skip
    check = LostNodes(ctx, every=0.0)
    check("train")  # every node is up: nothing to say
    worker = next(n["pod_id"] for n in run.cluster_nodes if n["rank"] == 1)
    runpod_account.kill_pod(worker)  # node 1's host fails; rank 0 looks fine from here
    with pytest.raises(RemoteError) as lost:
        check("train")
    assert lost.value.reason == "pod_lost"
    assert f"node 1 (pod {worker}) of the cluster was lost while train ran" in lost.value.message
    quiet = LostNodes(ctx)  # at the follow loop's cadence: not again within the period
    quiet("train")

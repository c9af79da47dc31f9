"""`run` reads Runpod's GPU catalog once before its pod's create request: the estimate step
keeps the choice `run` made from that read moments before it created the row (issue 26),
and reads the catalog again only when that choice has grown old (a run resumed later).

Real handlers, real Services, the emulated Runpod (REST v2) and Hub; the runs stop at
``provisioned`` or ``estimated``, so no SSH or training is needed.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from tests.handlers.test_provision import Recorder, live_session
from tests.plugins.hub_world import HubEnv
from tests.world.runpod import FakeRunpod
from thinnka.machine import RunState
from thinnka.operations import start_run
from thinnka.options import RunOptions
from thinnka.preflight import KEPT_CHOICE_S, check_gate, kept_candidates

pytestmark = pytest.mark.timeout(120)

CATALOG = ("GET", "/v2/catalog/gpus")
ROOT = Path(__file__).resolve().parents[2]


def _catalog_reads(fake: FakeRunpod) -> int:
    return sum((r.method, r.path) == CATALOG for r in fake.requests())


def _options(hub_env: HubEnv) -> RunOptions:
    return RunOptions(repo_id=hub_env.hub.models.chat, sft=True, trainer="trl")


def test_run_reads_the_catalog_once_before_the_create_request(
    tmp_path: Path, runpod_account: FakeRunpod, hub_env: HubEnv
) -> None:
    session = live_session(tmp_path, runpod_account, hub_env)
    services = session.get_services()
    services.runpod.gpu_offers(1, "ALL")  # what one read of the catalog costs
    one_read = _catalog_reads(runpod_account)
    assert one_read >= 1
    runpod_account.reset()

    run_id, runner = start_run(session, _options(hub_env), Recorder())
    kept = (session.store.get(run_id).plan or {})["kept_choice"]
    run = runner.drive(run_id, stop_at=RunState.provisioned)

    assert run.state is RunState.provisioned
    assert _catalog_reads(runpod_account) == one_read  # preflight's read; estimate kept it
    plan = run.plan or {}
    assert "kept_choice" not in plan  # used once, then dropped
    assert plan["candidates"] == kept["candidates"]
    assert run.gpu_type == plan["candidates"][0]["id"]
    # Every check still came before the create: the catalog was read before the pod's POST.
    kinds = [(r.method, r.path) for r in runpod_account.requests()]
    assert kinds.index(CATALOG) < kinds.index(("POST", "/v2/pods"))


def test_an_old_kept_choice_is_read_again_from_the_catalog(
    tmp_path: Path, runpod_account: FakeRunpod, hub_env: HubEnv
) -> None:
    session = live_session(tmp_path, runpod_account, hub_env)
    options = _options(hub_env)
    gate = check_gate(session.get_services(), options)
    runner = session.runner(Recorder())
    asked_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=KEPT_CHOICE_S + 1)
    stale = {"candidates": [{"id": "NO SUCH GPU", "display_name": "Gone"}]}
    plan = {"gate": gate.to_json(), "kept_choice": {**stale, "asked_at": asked_at.isoformat()}}
    run = runner.create(options, plan=plan, hub_model_id=gate.hub_model_id)
    before = _catalog_reads(runpod_account)

    estimated = runner.drive(run.id, stop_at=RunState.estimated)

    assert _catalog_reads(runpod_account) > before  # the old choice was not trusted
    candidates = (estimated.plan or {})["candidates"]
    assert candidates and all(c["id"] != "NO SUCH GPU" for c in candidates)
    assert "kept_choice" not in (estimated.plan or {})


def test_kept_candidates_only_while_fresh() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    fresh = {"candidates": [{"id": "NVIDIA L4"}], "asked_at": now.isoformat()}
    assert [c.id for c in kept_candidates({"kept_choice": fresh}, now)] == ["NVIDIA L4"]
    later = now + dt.timedelta(seconds=KEPT_CHOICE_S)
    assert kept_candidates({"kept_choice": fresh}, later) is None
    earlier = now - dt.timedelta(seconds=1)  # a clock that went back: not trusted either
    assert kept_candidates({"kept_choice": fresh}, earlier) is None
    assert kept_candidates({}, now) is None
    assert kept_candidates({"kept_choice": {**fresh, "candidates": []}}, now) is None


def test_steps_after_the_create_import_their_code_only_when_they_come() -> None:
    """The run path to the create request does not import the SSH, upload, training and push
    steps (they are imported while the pod boots); each is there when looked up."""
    script = (
        "import sys\n"
        "from thinnka.handlers import default_handlers\n"
        "import thinnka.operations\n"
        "handlers = default_handlers()\n"
        "for trigger in ('check_gate', 'estimate', 'provision'):\n"
        "    assert handlers[trigger].trigger == trigger\n"
        "later = ['thinnka.handlers.' + m for m in "
        "('connect', 'install', 'train', 'push', 'terminate')]\n"
        "print(sorted(m for m in later if m in sys.modules))\n"
        "assert handlers['connect'].trigger == 'connect'\n"
        "print('thinnka.handlers.connect' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"]

"""The crash matrix: SIGKILL the driving process at every transition, then recover/resume.

For each transition of the happy path, ``THINNKA_CRASH_AT=<trigger>:<phase>`` makes the
runner SIGKILL itself (a) before the handler's external call, (b) after the call but
before the transition is written, (c) after the write. Then ``thinnka recover`` runs (the
cron entry point) and, if the run is still not terminated, ``thinnka resume``. Every case
must end with at most one pod ever created for the run (the emulator's ledger), none
running, the run terminated with the outcome its crash point implies, and events that
tell the story. The training is the stand-in (tests/world/standin_trainer.py): these cases
are about orchestration.

``CASES`` is also what the README's "what happens when…" table is checked against
(tests/e2e/test_crash_matrix.py::test_readme_table_matches_the_cases).
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
    tell_standin,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# A process that dies before training is not continued by cron: recover cancels the
# run and terminates its pod. From training on, the run is finished: succeeded.
_BEFORE_TRAINING = ("check_gate", "estimate", "provision", "connect", "install")
PHASES = ("before", "after_call", "after_write")
CASES: dict[str, str] = {
    **{f"{t}:{p}": "cancelled" for t in _BEFORE_TRAINING for p in PHASES},
    "train:before": "cancelled",
    "train:after_call": "cancelled",  # started on the pod, not yet recorded: still "installed"
    "train:after_write": "succeeded",
    **{f"push:{p}": "succeeded" for p in PHASES},
    **{f"terminate:{p}": "succeeded" for p in PHASES},
}
# The README table's other rows: fault -> (outcome, the test that proves it).
STORIES: dict[str, tuple[str, str]] = {
    "`--nodes`: process killed during the cluster's training, nothing run afterwards": (
        "succeeded (after `recover`)",
        "tests/e2e/test_cluster.py::test_orchestrator_gone_during_training_the_watchdog_deletes_the_cluster",
    ),
    "`--nodes`: a node lost during training": (
        "failed (`pod_lost`)",
        "tests/e2e/test_cluster.py::test_a_lost_node_fails_the_run_and_the_cluster_is_deleted",
    ),
    "`--nodes`: rank 0's host lost during training, nobody following": (
        "cluster deleted",
        "tests/e2e/test_cluster.py::test_rank_0_lost_while_nobody_follows_another_nodes_watchdog_deletes_the_cluster",
    ),
    "`--nodes`: process killed during the cluster's training, then `resume`": (
        "succeeded",
        "tests/e2e/test_cluster.py::test_the_orchestrator_killed_during_cluster_training_resume_finishes_the_run",
    ),
    "`--nodes`: process killed before the first job, nothing run afterwards": (
        "cluster deleted",
        "tests/pod/test_boot_guard.py::test_a_cluster_node_nobody_connected_deletes_its_whole_cluster",
    ),
    "`--nodes`: the database fails as the cluster is created": (
        "cluster deleted (exit 1)",
        "tests/e2e/test_cluster.py::test_the_database_fails_as_the_cluster_is_created_the_cluster_is_deleted",
    ),
    "`reap` with an Instant Cluster no run owns": (
        "cluster deleted",
        "tests/e2e/test_cluster.py::test_reap_deletes_an_orphaned_cluster_and_never_a_foreign_one",
    ),
    "process killed between jobs (setup ended, training not started), nothing run afterwards": (
        "failed (`pod_lost`, after `resume` or `recover`)",
        "tests/e2e/test_watchdog.py::test_the_orchestrator_dies_between_jobs_the_idle_pod_ends_itself_then_pod_lost",
    ),
    "process killed while the pod boots or waits for SSH, nothing run afterwards": (
        "failed (`pod_lost`, after `resume` or `recover`)",
        "tests/e2e/test_boot_guard.py::test_the_orchestrator_dies_while_the_pod_boots_the_pod_ends_itself_then_pod_lost",
    ),
    "process killed after SSH, before the first job, nothing run afterwards": (
        "failed (`pod_lost`, after `resume` or `recover`)",
        "tests/e2e/test_boot_guard.py::test_the_orchestrator_dies_after_ssh_before_the_first_job_the_pod_ends_itself",
    ),
    "process killed during training, nothing run afterwards": (
        "succeeded (after `resume`)",
        "tests/e2e/test_watchdog.py::test_kill_9_during_training_the_pod_ends_itself_and_resume_records_success",
    ),
    "`--max-hours` passes, nobody attached": (
        "failed (`max_duration`, after `resume` or `recover`)",
        "tests/e2e/test_watchdog.py::test_tiny_max_hours_nobody_attached_the_pod_goes_at_the_deadline",
    ),
    "`--max-cost` would be passed": (
        "failed (`max_cost`)",
        "tests/pod/test_watchdog.py::test_watchdog_and_orchestrator_agree_on_the_deadline",
    ),
    "pod lost during training with `--max-restarts 0` (host failure, console terminate)": (
        "failed (`pod_lost`)",
        "tests/e2e/test_watchdog.py::test_a_pod_lost_during_training_fails_the_run_with_pod_lost_within_a_minute",
    ),
    "the trainer created the target repo, the pod stopped before any push, `--max-restarts 0`": (
        "failed (`pod_lost`)",
        "tests/e2e/test_watchdog.py::test_a_repo_the_trainer_created_with_nothing_pushed_is_no_success",
    ),
    "pod lost during training after a checkpoint was pushed to the Hub": (
        "succeeded",
        "tests/e2e/test_durable_runs.py::test_a_pod_lost_after_a_hub_checkpoint_is_replaced_and_the_training_resumes",
    ),
    "pod lost during training with `--network-volume`, after a checkpoint was saved": (
        "succeeded",
        "tests/e2e/test_durable_runs.py::test_a_pod_lost_with_a_network_volume_resumes_from_the_volume_in_its_data_center",
    ),
    "pod lost during training and the orchestrator killed too, then `resume`": (
        "succeeded",
        "tests/e2e/test_durable_runs.py::test_resume_restarts_and_follows_a_training_whose_pod_and_orchestrator_died",
    ),
    "pod lost during training and the orchestrator killed too, then `recover`": (
        "succeeded (after `recover` passes)",
        "tests/e2e/test_durable_runs.py::test_recover_restarts_a_training_whose_pod_and_orchestrator_both_died",
    ),
    "pod lost during training every time, before any checkpoint": (
        "failed (`pod_lost`)",
        "tests/e2e/test_durable_runs.py::test_max_restarts_bounds_a_pod_lost_every_time",
    ),
    "a second `run` to a repo a live run pushes to (a sweep with the default `--hub-model-id`)": (
        "refused (exit 2)",
        "tests/e2e/test_races.py::test_a_second_live_run_to_the_same_repo_is_refused_before_any_pod",
    ),
    "`recover` during a long training": (
        "still training",
        "tests/e2e/test_watchdog.py::test_ctrl_c_in_training_detaches_and_recover_leaves_the_training_running",
    ),
    "Ctrl-C during training": (
        "still training",
        "tests/e2e/test_watchdog.py::test_ctrl_c_in_training_detaches_and_recover_leaves_the_training_running",
    ),
    "terminal closed (SIGHUP) while the pod boots": (
        "cancelled",
        "tests/e2e/test_hangup.py::test_closing_the_terminal_while_the_pod_boots_cancels_the_run_and_terminates_its_pod",
    ),
    "terminal closed (SIGHUP) during training": (
        "still training",
        "tests/e2e/test_hangup.py::test_closing_the_terminal_during_training_detaches_like_ctrl_c",
    ),
    "the database fails (disk full, locked past its timeout) after the pod exists": (
        "failed (`internal`, after `recover`)",
        "tests/e2e/test_store_failure.py::test_the_database_fails_after_the_pod_exists_the_pod_is_terminated_and_recover_says_why",
    ),
    "`cancel` while another process drives": (
        "cancelled",
        "tests/e2e/test_operations.py::test_cancel_stops_a_live_run_and_terminates_its_pod",
    ),
    "two `recover` at once for a run whose process died before training": (
        "cancelled",
        "tests/e2e/test_operations.py::test_two_recovers_at_once_only_the_one_that_stops_a_dead_run_writes_its_events",
    ),
    "two `resume` at once for a killed run": (
        "succeeded",
        "tests/e2e/test_races.py::test_two_resume_racing_for_a_killed_run_one_drives_the_other_names_it",
    ),
    "`reap` with a copy or a restore of the database while the original drives a run": (
        "still training",
        "tests/e2e/test_races.py::test_reap_with_a_copy_of_the_database_keeps_the_pod_the_original_drives",
    ),
    "the Hub answers 5xx to the trainer's final push (transformers does not retry its commit)": (
        "succeeded",
        "tests/e2e/test_push_faults.py::test_a_hub_5xx_on_the_final_push_is_retried_on_the_pod_and_the_run_succeeds",
    ),
    "the Hub keeps failing the final push": (
        "failed (`push_failed`)",
        "tests/e2e/test_push_faults.py::test_a_final_push_that_keeps_failing_keeps_the_pod_for_the_hold_then_ends_it",
    ),
    "Runpod answers 5xx to the terminate of a pushed run": (
        "succeeded",
        "tests/e2e/test_cleanup_faults.py::test_runpod_5xx_on_terminate_is_retried_and_the_pushed_run_succeeds",
    ),
    "Runpod keeps failing the terminate of a pushed run": (
        "succeeded (run stays `pushed`, exit 0)",
        "tests/e2e/test_cleanup_faults.py::test_a_pod_runpod_will_not_terminate_keeps_a_pushed_run_succeeded",
    ),
    "429s, 500s and dropped connections at random during a whole run": (
        "succeeded",
        "tests/e2e/test_races.py::test_a_whole_run_under_random_429s_500s_and_drops_succeeds_with_one_pod",
    ),
    "`recover` with a webhook that never finishes answering (a header line every 3 s)": (
        "cancelled",
        "tests/e2e/test_outbox.py::test_recover_with_a_trickling_webhook_still_cleans_up_and_returns",
    ),
    "a `.env` that is not UTF-8 (a Latin-1 byte in a comment, UTF-16 without a byte-order mark)": (
        "exit 2",
        "tests/e2e/test_errors.py::test_an_env_file_that_is_not_utf8_is_named_with_its_line_and_exit_2",
    ),
    "the state folder is read-only (a read-only mount)": (
        "exit 2 for the commands that write",
        "tests/e2e/test_errors.py::test_a_read_only_state_folder_serves_reading_commands_and_refuses_writing_ones",
    ),
    "the state folder cannot be created (a path under a file)": (
        "exit 2",
        "tests/e2e/test_errors.py::test_a_state_folder_under_a_file_is_one_clear_error_for_every_command",
    ),
    "`report --output` a folder, a full disk or a read-only place": (
        "exit 2 (a folder: written there)",
        "tests/e2e/test_errors.py::test_report_into_a_folder_a_full_device_or_a_read_only_place",
    ),
    "a `--json` command fails (bad input, unknown run, a refused key)": (
        "its exit code, unchanged",
        "tests/e2e/test_errors.py::test_every_json_command_prints_a_json_error_object_when_it_fails",
    ),
    "a credential in a `--custom-dependencies` URL, or a `file://` one": (
        "exit 2",
        "tests/e2e/test_errors.py::test_a_credential_in_a_custom_dependency_url_goes_nowhere_and_rents_nothing",
    ),
    "a run refused at the gate, its webhook dead": (
        "failed (`precheck`)",
        "tests/e2e/test_outbox.py::test_a_run_refused_at_the_gate_exits_without_waiting_for_a_dead_sink",
    ),
}  # fmt: skip


def _crash(world: World, point: str) -> str:
    env = dict(world.env, THINNKA_CRASH_AT=point)
    argv = world.command(*standin_run(world, "--watchdog-grace", "60"))
    proc = subprocess.run(argv, cwd=world.workdir, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    return proc.stdout.split()[1]


# All 24 points run in CI (about 2.5 minutes on 2 cores): each is a place where a real
# process can die, and an idempotent step that is only "probably" safe is how pods leak.
@pytest.mark.parametrize("point", list(CASES))
def test_sigkill_at_every_transition_then_recover_and_resume(
    standin_world: World, point: str
) -> None:
    world = standin_world
    run_id = _crash(world, point)
    recovered = world.thinnka("recover", "--json", timeout=120)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    shown = world.show(run_id)
    if shown["state"] != "terminated":  # a training left to its watchdog: follow it to the end
        resumed = world.thinnka("resume", run_id, timeout=120)
        assert resumed.returncode in (0, 1), resumed.stderr[-2000:]
        shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", CASES[point]), shown["error"]
    mine = [entry for entry in world.runpod.ledger() if entry.env.get("THINNKA_RUN_ID") == run_id]
    assert len(mine) <= 1 and world.runpod.pods() == []
    kinds = [event["kind"] for event in shown["events"]]
    if CASES[point] == "cancelled":
        assert "abandoned" in kinds, kinds
        assert shown["error"]["reason"] == "cancelled"
    else:
        assert shown["error"] is None
        logs = world.thinnka("logs", run_id).stdout
        assert "[train] stand-in trainer: pushed" in logs  # the whole training log is here
        assert "model.safetensors" in world.hub.files(shown["hub_model_id"])


def test_readme_table_matches_the_cases() -> None:
    """The README's "what happens when…" rows name each crash story and its outcome, and
    every other row is a story of ``STORIES`` whose test exists."""
    root = Path(__file__).parents[2]
    readme = (root / "README.md").read_text()
    section = readme.split("### What happens when", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    others = {}
    for line in table:
        fault, outcome = (cell.strip() for cell in line.strip("|").split(" | ")[:2])
        if not re.fullmatch(r"`[a-z_]+:[a-z_|\\]+`", fault):
            others[fault] = outcome
    assert others == {fault: outcome for fault, (outcome, _) in STORIES.items()}
    for _, test in STORIES.values():
        path, _, name = test.partition("::")
        assert f"def {name}(" in (root / path).read_text(), test
    rows = re.findall(r"^\| `([a-z_]+:[a-z_|\\]+)` \| ([a-z]+) \|", section, flags=re.M)
    assert rows, "no crash rows in the README table"
    covered: dict[str, str] = {}
    for points, outcome in rows:
        trigger, _, phases = points.partition(":")
        for phase in phases.split("\\|"):  # a pipe inside a table cell is escaped
            covered[f"{trigger}:{phase}"] = outcome
    assert covered == CASES

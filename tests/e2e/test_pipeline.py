"""`thinnka run` end to end: emulated Runpod and Hub, a real sshd pod, real CPU training."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.plugins.thinnka_world import BOTH_TRANSPORTS, World
from thinnka.handlers.push import RUN_MARKER

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CPU = ["--trainer", "trl", "--set", "use_cpu=true", "--set", "bf16=false",
       "--set", "torch_dtype=float32"]  # fmt: skip


def _run_id(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("run r-"), stdout[:500]
    return first.split()[1]


def assert_one_transport(world: World, runpod_api: str) -> None:
    """A rest run talks REST v2 only, a graphql run GraphQL only (the emulator's request log)."""
    surfaces = {(r.surface, r.key) for r in world.runpod.requests()}
    assert surfaces, "no Runpod request was made"
    if runpod_api == "rest":
        assert {s for s, _ in surfaces} == {"v2"}, surfaces
    else:
        assert {s for s, _ in surfaces} == {"graphql"}, surfaces


@BOTH_TRANSPORTS
def test_sft_run_trains_pushes_and_terminates(world: World, runpod_api: str) -> None:
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
    # After TRL's own final push ("End of training"), the pod recorded it: the push check's proof.
    assert [c.summary for c in commits][-2:] == [
        "End of training",
        f"thinnka: final push of run {run_id}",
    ]
    marker = json.loads(world.hub.files(shown["hub_model_id"])[RUN_MARKER])
    assert (marker["run_id"], marker["job"], marker["step"]) == (run_id, "train", 2), marker
    assert "[train]" in result.stdout
    assert world.thinnka("reap").returncode == 0
    assert shown["cost_basis"] == ("billed" if runpod_api == "rest" else "estimate")
    assert_one_transport(world, runpod_api)


GRPO_SMALL = ["--no-vllm", "--num-generations", "2", "--per-device-train-batch", "2",
              "--gradient-accumulation-steps", "1", "--max-prompt-length", "64",
              "--max-completion-length", "16"]  # fmt: skip


@BOTH_TRANSPORTS
def test_grpo_run_without_vllm_trains_pushes_and_terminates(world: World, runpod_api: str) -> None:
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--max-steps", "2",
        "--dataset-name", world.hub.datasets.grpo, *GRPO_SMALL, *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = world.show(_run_id(result.stdout))
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert shown["cost_usd"] > 0
    assert world.hub.commits(shown["hub_model_id"])
    assert [entry.terminated_at is not None for entry in world.runpod.ledger()] == [True]
    assert_one_transport(world, runpod_api)


@pytest.mark.parametrize("case", ["gated_denied", "unknown_model"])
def test_preflight_failures_exit_1_with_a_failed_run_and_no_pod(world: World, case: str) -> None:
    repo = world.hub.models.gated_denied if case == "gated_denied" else "nobody/no-such-model"
    result = world.thinnka("run", "--repo-id", repo, "--sft", *CPU)
    assert result.returncode == 1, result.stderr[-2000:]
    shown = world.show(_run_id(result.stdout))
    assert shown["outcome"] == "failed" and shown["pod_id"] is None
    said = {"gated_denied": "is gated", "unknown_model": "Model not found"}[case]
    assert shown["error"]["reason"] == "precheck" and said in shown["error"]["message"]
    assert shown["error"]["retry"] == "user_action"
    if case == "gated_denied":
        assert f"{world.hub.endpoint}/{repo}" in shown["error"]["message"]
    assert world.runpod.ledger() == []
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("token", ["read", "fine_grained_no_write"])
def test_a_token_that_cannot_write_is_refused_with_exit_2_and_nothing_created(
    world: World, token: str
) -> None:
    # The user's own choice (this token, this namespace) cannot work: a usage error, no row.
    world.write_dotenv(HF_TOKEN=getattr(world.hub.tokens, token))
    result = world.thinnka("run", "--repo-id", world.hub.models.chat, "--sft", *CPU)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # no `run <id>` line: no run exists
    listed = world.thinnka("ls", "--json")
    assert json.loads(listed.stdout) == []
    assert world.runpod.ledger() == []


def test_a_gated_model_with_access_passes_the_gate(world: World) -> None:
    result = world.thinnka("plan", "--repo-id", world.hub.models.gated_granted, "--sft",
                           "--json", *CPU)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert world.runpod.ledger() == []


@BOTH_TRANSPORTS
def test_no_capacity_on_the_first_gpu_falls_to_the_next(world: World, runpod_api: str) -> None:
    world.runpod.set_stock("NVIDIA L40S", 0)
    plan = world.thinnka("plan", "--repo-id", world.hub.models.chat, "--sft", "--json", *CPU)
    assert json_first_gpu(plan.stdout) != "NVIDIA L40S", "out-of-stock GPUs are not planned"
    world.runpod.set_stock("NVIDIA L40S", 5)
    # In stock when planned, gone at the create call: the create fails, the next one is tried.
    world.runpod.vanish_stock_at_create("NVIDIA L40S")
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "1",
        "--dataset-name", world.hub.datasets.sft, *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    shown = world.show(_run_id(result.stdout))
    ledger = world.runpod.ledger()
    assert len(ledger) == 1 and ledger[0].terminated_at is not None
    assert shown["gpu_type"] != "NVIDIA L40S"
    assert_one_transport(world, runpod_api)


def json_first_gpu(stdout: str) -> str:
    import json

    return json.loads(stdout)["gpu"]  # type: ignore[no-any-return]


def _train_lines(text: str) -> list[str]:
    return [line[len("[train] ") :] for line in text.splitlines() if line.startswith("[train] ")]


def _expected_lines(log: bytes) -> list[str]:
    from thinnka.pod.jobs import _LineSplitter

    items, _ = _LineSplitter().feed(log)
    return [text for text, progress in items if not progress and text.strip()]


@BOTH_TRANSPORTS
def test_kill_9_while_training_then_resume_reattaches(world: World, runpod_api: str) -> None:
    proc = world.spawn(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "20",
        "--dataset-name", world.hub.datasets.sft, *CPU, "--set", "logging_steps=1",
    )  # fmt: skip
    assert proc.stdout is not None
    first_line = proc.stdout.readline()
    run_id = first_line.split()[1]
    out: list[str] = [first_line]
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 300
    while len(_train_lines("".join(out))) < 5:
        assert proc.poll() is None, "".join(out)[-2000:]
        assert time.monotonic() < deadline, "training never printed"
        time.sleep(0.1)
    before = world.show(run_id)
    assert before["state"] == "training"
    run_dir = Path(before["remote"]["run_dir"])
    assert not (run_dir / "train.exit").exists(), "training ended before the kill: make it longer"
    arguments = world.process_arguments()  # the pod's processes run on this machine
    proc.kill()
    proc.wait(timeout=30)
    reader.join(timeout=30)
    first_run = "".join(out)

    resumed = world.thinnka("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    after = world.show(run_id)
    assert (after["state"], after["outcome"]) == ("terminated", "succeeded")
    assert after["pod_id"] == before["pod_id"]
    assert after["remote"]["train_pid"] == before["remote"]["train_pid"]
    # Scored once before training (the base model) and after, across the kill and resume.
    assert {s["name"] for s in after["scores"]} >= {"eval_loss", "perplexity"}
    assert all(s["before"] is not None and s["after"] is not None for s in after["scores"])
    assert int((run_dir / "train.pid").read_text()) == before["remote"]["train_pid"]
    assert len(world.runpod.ledger()) == 1
    assert world.hub.commits(after["hub_model_id"])
    assert_one_transport(world, runpod_api)

    # Every line reached the terminal in order: the first run showed a prefix of the log,
    # resume the rest; only the chunk in flight at the kill may show twice, never none.
    expected = _expected_lines((run_dir / "train.log").read_bytes())
    shown_first, shown_resumed = _train_lines(first_run), _train_lines(resumed.stdout)
    assert shown_first == expected[: len(shown_first)]
    assert shown_resumed and shown_resumed == expected[len(expected) - len(shown_resumed) :]
    assert len(shown_first) + len(shown_resumed) >= len(expected), "lines lost at the kill"
    local_copy = (world.workdir / "state" / "runs" / run_id / "remote.log").read_text()
    assert _train_lines(local_copy) == expected

    # No secret anywhere: output, the state folder, the pod's process arguments.
    state_files = [p for p in (world.workdir / "state").rglob("*") if p.is_file()]
    haystacks = [first_run, resumed.stdout, resumed.stderr, arguments]
    haystacks += [p.read_bytes().decode(errors="replace") for p in state_files]
    haystacks += [(run_dir / name).read_text() for name in ("run.env", "train.cmd", "setup.cmd")]
    for secret in world.secrets:
        for text in haystacks:
            assert secret not in text


def test_sft_merge_pushes_the_merged_model_and_keeps_the_adapter_apart(world: World) -> None:
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--merge-model", "--max-steps", "1",
        "--dataset-name", world.hub.datasets.sft, *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = world.show(_run_id(result.stdout))
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    merged = world.hub.files(shown["hub_model_id"])
    assert "model.safetensors" in merged and "adapter_config.json" not in merged
    card = merged["README.md"].decode()
    assert card.startswith("---") and "base_model" in card
    assert "## Evaluation" in card and "| eval_loss |" in card  # the training's scores
    adapter = world.hub.files(shown["hub_model_id"] + "-adapter")
    assert "adapter_config.json" in adapter
    # The merge makes the final push: it, not the adapter's push, is recorded, where it went.
    assert json.loads(merged[RUN_MARKER])["job"] == "merge"
    assert RUN_MARKER not in adapter

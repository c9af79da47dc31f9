"""Events survive a kill -9: complete, ordered, de-duplicable delivery after `resume`.

The real `thinnka run` posts to a local webhook and a Discord-like sink that
is slow and answers chosen messages with 429 + retry_after, so events are
still waiting in the outbox when the process is killed mid-run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_pipeline import CPU
from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
    tell_standin,
)
from tests.world.webhook import WebhookReceiver
from thinnka.settings import load_settings
from thinnka.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FIELDS = {"event", "message", "timestamp", "stage", "project", "repo_id", "run_id", "event_id",
          "state", "cost_usd"}  # fmt: skip
STATES = ["created", "gated", "estimated", "provisioned", "connected", "installed", "training",
          "pushed", "terminated"]  # fmt: skip
DISCORD_TOKEN = "CANARYdiscordWebhookToken0123456789"


def _first_seen(items: list[dict[str, object]]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item["event_id"] not in seen:
            seen.append(str(item["event_id"]))
    return seen


def test_events_are_delivered_completely_in_order_across_kill_9_and_resume(world: World) -> None:
    with WebhookReceiver() as hook, WebhookReceiver(f"/api/webhooks/42/{DISCORD_TOKEN}") as discord:
        discord.down = True  # Discord is out until the process dies: its events wait
        discord.retry_after = 0.3
        # The webhook from .env, Discord by flag: a flag's URL is never stored, so the
        # resume below must be given it again.
        world.write_dotenv(PROGRESS_WEBHOOK_URL=hook.url, THINNKA_PROGRESS_INTERVAL_S="1")
        proc = world.spawn(
            "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "6",
            "--dataset-name", world.hub.datasets.sft, "--discord-webhook-url", discord.url, *CPU,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not any(p.get("state") == "training" for p in list(hook.received)):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
        run_id = str(hook.received[0]["run_id"])
        at_kill = world.show(run_id)
        assert at_kill["state"] in ("installed", "training")
        assert at_kill["outbox"]["discord"]["pending"] > 5, "nothing was left to deliver"
        assert discord.received == []
        discord.down = False  # back, rate limiting chosen messages (429 + retry_after)
        discord.throttle_at = {discord.requests + 2, discord.requests + 5}

        resumed = world.thinnka("resume", run_id, "--discord-webhook-url", discord.url)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        after = world.show(run_id)
        assert (after["state"], after["outcome"]) == ("terminated", "succeeded")
        assert after["outbox"]["webhook"]["pending"] == after["outbox"]["webhook"]["failed"] == 0
        assert after["outbox"]["discord"]["pending"] == 0
        assert after["outbox"]["discord"]["failed"] == 0

    state_dir = world.workdir / "state"
    store = open_store(load_settings(environ={"THINNKA_STATE_DIR": str(state_dir)},
                                     cwd=world.workdir))  # fmt: skip
    stored = store.outbox.payloads(run_id)
    # Complete and in order: received (duplicates dropped by event_id) == the outbox.
    assert _first_seen(hook.received) == [p["event_id"] for p in stored]
    assert len(discord.received) >= len(stored)
    assert discord.requests >= len(discord.received) + 2  # the 429s were retried
    # Every state the run passed, each as its own event.
    states = [p["state"] for p in stored if p["event"] == "state"]
    assert states == STATES
    for payload in hook.received:
        assert payload.keys() >= FIELDS, payload
        assert payload["run_id"] == run_id and payload["project"] == "thinnka"
    progress = [p for p in stored if p["event"] == "progress"]
    assert progress and all(p["total_steps"] == 6 for p in progress if p["step"] is not None)
    assert any(p.get("loss") is not None for p in progress)
    by_event = {p["event"]: p for p in stored}
    assert by_event["pod_created"]["gpu_type"] and by_event["pod_created"]["cost_per_hr"] > 0
    assert by_event["pushed"]["hub_url"].endswith(after["hub_model_id"])
    final = discord.received[-1]["content"]
    assert "done" in final and "model: " in final and "cost: $" in final
    assert stored[-1]["event"] == "done" and stored[-1]["hub_url"].endswith(after["hub_model_id"])
    # The metrics of every logged step, stored once although the run was followed twice.
    losses = store.metrics.series(run_id)["loss"]
    assert [step for step, _ in losses] == list(range(1, 7))

    # No secret in any payload, delivery or state file (the Discord token included).
    secrets = [*world.secrets, DISCORD_TOKEN]
    haystacks = [json.dumps(hook.received), json.dumps(discord.received)]
    haystacks += [p.read_bytes().decode(errors="replace") for p in Path(state_dir).rglob("*")
                  if p.is_file()]  # fmt: skip
    for secret in secrets:
        for text in haystacks:
            assert secret not in text


# ------------------------------------------------------------------ bounded under every sink
def test_recover_with_a_trickling_webhook_still_cleans_up_and_returns(
    standin_world: World,
) -> None:
    """A sink that trickles one header line every 3 s never trips a per-read timeout; the
    cron entry point must still cancel the dead run, terminate its pod, and return."""
    world = standin_world
    with WebhookReceiver() as hook:
        hook.trickle_s = 3.0
        world.write_dotenv(PROGRESS_WEBHOOK_URL=hook.url)
        env = dict(world.env, THINNKA_CRASH_AT="provision:after_write")  # dies owning a pod
        crashed = subprocess.run(world.command(*standin_run(world)), cwd=world.workdir,
                                 env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
        run_id = crashed.stdout.split()[1]
        assert world.runpod.pods(), "the crash left no pod to clean up"
        started = time.monotonic()
        recovered = world.thinnka("recover", "--json", timeout=150)
        took = time.monotonic() - started
        assert recovered.returncode == 0, recovered.stderr[-2000:]
        assert hook.trickled >= 1  # the sink was tried, and given up on
    # One run's cleanup plus at most one bounded delivery pass (30 s), never the sink's pace.
    assert took < 75, took
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "cancelled")
    assert world.runpod.pods() == []
    assert shown["outbox"]["webhook"]["pending"] > 0  # waiting for a sink that answers


def test_a_run_refused_at_the_gate_exits_without_waiting_for_a_dead_sink(world: World) -> None:
    with WebhookReceiver() as hook:
        hook.trickle_s = 3.0  # accepts the connection, never finishes answering
        world.write_dotenv(PROGRESS_WEBHOOK_URL=hook.url)
        started = time.monotonic()
        result = world.thinnka("run", "--repo-id", world.hub.models.gated_denied, "--sft",
                               "--max-steps", "1", timeout=120)  # fmt: skip
        took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    shown = world.show(result.stdout.split()[1])
    assert shown["error"]["reason"] == "precheck" and world.runpod.ledger() == []
    # At most one request's total deadline (5 s) after the refusal, not 20 s and more.
    assert took < 15, took
    assert shown["outbox"]["webhook"]["pending"] > 0

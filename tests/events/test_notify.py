"""The events outbox and its delivery, against real HTTP receivers and a real SQLite store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.world.webhook import WebhookReceiver
from thinnka.errors import StateConflict
from thinnka.events.delivery import DeliveryPolicy
from thinnka.events.notify import Notifier, deliver_backlog
from thinnka.events.sinks import Sink, discord_text
from thinnka.machine import RunState
from thinnka.options import RunOptions
from thinnka.settings import load_settings
from thinnka.store import Store, open_store

FIELDS = {"event", "message", "timestamp", "stage", "project", "repo_id", "run_id", "event_id",
          "state", "cost_usd"}  # fmt: skip
QUICK = DeliveryPolicy(pause_s=0.2, poll_s=0.05, tries_per_round=3)


class Silent:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.events: list[str] = []

    def event(self, name: str, message: str, **fields: Any) -> None:
        self.events.append(name)

    def line(self, stage: str, text: str) -> None:
        self.lines.append(text)

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        return


def _store(folder: Path, **env: str) -> Store:
    environ = {"THINNKA_STATE_DIR": str(folder), **env}
    return open_store(load_settings(environ=environ, cwd=folder))


def _notifier(store: Store, run_id: str, sinks: list[Sink], **kw: Any) -> Notifier:
    kw.setdefault("policy", QUICK)
    return Notifier(Silent(), store=store, sinks=sinks, repo_id="org/m", secrets=kw.pop(
        "secrets", []), run_id=run_id, **kw)  # fmt: skip


def test_a_transition_and_its_state_event_are_one_transaction(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m"), owner="me")
    store.transition(run.id, owner="me", source=RunState.created, dest=RunState.gated,
                     trigger="check_gate", message="Model readable.")  # fmt: skip
    with pytest.raises(StateConflict):  # the move fails: no event either
        store.transition(run.id, owner="me", source=RunState.created, dest=RunState.gated,
                         trigger="check_gate")  # fmt: skip
    payloads = store.outbox.payloads(run.id)
    assert [(p["event"], p["state"]) for p in payloads] == [
        ("state", "created"),
        ("state", "gated"),
    ]
    assert payloads[1]["from_state"] == "created" and payloads[1]["message"] == "Model readable."
    for payload in payloads:
        assert payload.keys() >= FIELDS
        assert payload["run_id"] == run.id and payload["repo_id"] == "org/m"
    assert len({p["event_id"] for p in payloads}) == 2


def test_every_event_reaches_both_sinks_in_order_through_discord_429s(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m"))
    with WebhookReceiver() as hook, WebhookReceiver("/api/webhooks/1/tok") as discord:
        discord.throttle_at = {2, 3, 7}  # Discord's rate limit on chosen messages
        notifier = _notifier(
            store, run.id, [Sink("webhook", hook.url), Sink("discord", discord.url)]
        )
        for i in range(8):
            notifier.event("note", f"event {i}")
        notifier.close(timeout=10)
    expected = store.outbox.payloads(run.id)
    assert [p["event_id"] for p in hook.received] == [p["event_id"] for p in expected]
    assert len(discord.received) == len(expected) and discord.requests == len(expected) + 3
    contents = [item["content"] for item in discord.received]
    assert [c.split("\n", 1)[1] for c in contents[1:]] == [f"event {i}" for i in range(8)]
    assert all(item["allowed_mentions"] == {"parse": []} for item in discord.received)
    counts = store.outbox.counts(run.id, ["webhook", "discord"])
    assert counts["discord"] == {"pending": 0, "delivered": 9, "failed": 0}


def test_a_sink_that_stays_down_keeps_its_events_for_a_later_call(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with WebhookReceiver() as hook:
        environ = {"THINNKA_STATE_DIR": str(tmp_path), "PROGRESS_WEBHOOK_URL": hook.url}
        settings = load_settings(environ=environ, cwd=tmp_path)
        run = store.create_run(RunOptions(repo_id="org/m"))
        hook.down = True
        notifier = _notifier(store, run.id, [Sink("webhook", hook.url)])
        notifier.event("note", "one")
        notifier.event("note", "two")
        started = time.monotonic()
        notifier.close(timeout=1.0)
        assert time.monotonic() - started < 5  # closing is bounded even with the sink down
        assert hook.requests >= 1 and hook.received == []
        assert store.outbox.counts(run.id, ["webhook"])["webhook"]["pending"] == 3
        hook.down = False
        assert deliver_backlog(store, settings, timeout=10, policy=QUICK) == 0
    # At least once: a post the closed notifier gave up on (the receiver still had it) may be
    # taken after the receiver is back, beside the later call's copy; event_id tells them apart.
    first_copies: list[dict[str, Any]] = []
    for payload in hook.received:
        if payload["event_id"] not in {p["event_id"] for p in first_copies}:
            first_copies.append(payload)
    assert [p["message"] for p in first_copies] == ["Run created.", "one", "two"]
    assert store.outbox.counts(run.id, ["webhook"])["webhook"]["pending"] == 0


def test_refused_and_undeliverable_events_are_marked_failed_not_dropped(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m"))
    with WebhookReceiver() as hook:
        hook.status_at = {1: 404}  # refused: never retried, marked failed, the rest goes on
        notifier = _notifier(store, run.id, [Sink("webhook", hook.url)])
        notifier.event("note", "after")
        notifier.close(timeout=5)
        assert hook.requests == 2 and [p["message"] for p in hook.received] == ["after"]
        assert store.outbox.counts(run.id, ["webhook"])["webhook"]["failed"] == 1

        hook.down = True
        policy = DeliveryPolicy(pause_s=0.05, poll_s=0.05, tries_per_round=2, max_tries=4)
        notifier = _notifier(store, run.id, [Sink("webhook", hook.url)], policy=policy)
        notifier.event("note", "lost")
        notifier.close(timeout=5)
    counts = store.outbox.counts(run.id, ["webhook"])["webhook"]
    assert counts == {"pending": 0, "delivered": 1, "failed": 2}


def test_progress_is_one_event_per_interval_with_the_latest_numbers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m"))
    now = [0.0]
    notifier = _notifier(store, run.id, [], progress_interval_s=30, clock=lambda: now[0])
    for step in range(1, 101):  # 100 steps, one a second
        now[0] = float(step)
        bar = f" {step * 100 // 120}%|███ | {step}/120 [00:{step % 60:02d}<01:05, 1.00it/s]"
        notifier.progress("train", step, 120, bar)
        notifier.progress("train", 3, 26, "Loading weights:  11%|█ | 3/26 [00:00<00:01]")
        notifier.line("train", f"{{'loss': {1.0 / step}, 'epoch': {step / 120}}}")
    notifier.close()
    progress = [p for p in store.outbox.payloads(run.id) if p["event"] == "progress"]
    assert [p["step"] for p in progress] == [1, 31, 61, 91, 100]
    last = progress[-1]
    assert last["total_steps"] == 120 and last["eta_s"] == 65.0
    assert last["loss"] == pytest.approx(0.01) and last["epoch"] == pytest.approx(100 / 120)
    assert last.keys() >= FIELDS and last["stage"] == "train"


def test_no_secret_in_any_payload_or_delivery(tmp_path: Path) -> None:
    canaries = {"RUNPOD_API_KEY": "rpa_CANARYRUNPOD0001", "HF_TOKEN": "hf_CANARYHFTOKEN0002",
                "WANDB_API_KEY": "wandb_CANARY0003"}  # fmt: skip
    store = _store(tmp_path, **canaries)
    token = "CANARYdiscordTOKEN0004abcdef"
    with WebhookReceiver() as hook, WebhookReceiver(f"/api/webhooks/99/{token}") as discord:
        sinks = [
            Sink("webhook", hook.url + "?key=CANARYhookKEY00005"),
            Sink("discord", discord.url),
        ]
        secrets = [*canaries.values()]
        run = store.create_run(RunOptions(repo_id="org/m"), owner="me")
        notifier = _notifier(store, run.id, sinks, secrets=secrets)
        everything = " ".join([*canaries.values(), token, discord.url, "CANARYhookKEY00005"])
        notifier.event("note", f"leak {everything}")
        notifier.event("error", f"boom {everything}\nLast output:\nline {everything}")
        store.transition(run.id, owner="me", source=RunState.created, dest=RunState.failed,
                         trigger="fail", message=f"failed {everything}")  # fmt: skip
        notifier.close(timeout=10)
    haystack = repr(store.outbox.payloads(run.id)) + repr(hook.received) + repr(discord.received)
    assert len(hook.received) == 4 and len(discord.received) == 4
    for secret in [*canaries.values(), token, "CANARYhookKEY00005"]:
        assert secret not in haystack
    assert "***" in haystack


def test_discord_messages_are_readable_and_fit() -> None:
    base = {"repo_id": "org/m", "run_id": "r-abc123", "cost_usd": 0.42, "stage": None}
    tail = [f"line {i} ```x``` `y`" for i in range(500)] + ["RuntimeError: the real reason"]
    failed = discord_text({**base, "event": "error", "message": "Training failed.", "tail": tail})
    assert len(failed) <= 2000 and failed.startswith("**[org/m · r-abc123] error**")
    assert failed.endswith("RuntimeError: the real reason\n```")
    block = failed.split("\n```\n", 1)[1][: -len("\n```")]
    assert "`" not in block  # nothing inside can close the code block
    done = discord_text({**base, "event": "done", "message": "Run r-abc123 succeeded.",
                         "hub_url": "https://hf.co/u/m", "duration_s": 3723.0})  # fmt: skip
    assert "model: https://hf.co/u/m" in done and "duration: 1h 02m" in done
    assert "cost: $0.4200" in done
    state = discord_text({**base, "event": "state", "state": "provisioned", "message": "Pod up."})
    assert state == "**[org/m · r-abc123] state: provisioned**\nPod up."
    long = discord_text({**base, "event": "note", "message": "x" * 5000})
    assert len(long) <= 2000


def test_an_unreachable_endpoint_never_blocks_the_caller(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m"))
    notifier = _notifier(store, run.id, [Sink("webhook", "http://127.0.0.1:9/x")])
    started = time.monotonic()
    for i in range(20):
        notifier.event("note", f"hello {i}")
        notifier.line("train", "a line")
    assert time.monotonic() - started < 1.0
    notifier.close(timeout=2)
    assert time.monotonic() - started < 6
    assert store.outbox.counts(run.id, ["webhook"])["webhook"]["pending"] == 21


@pytest.mark.timeout(60)
def test_a_sink_that_trickles_header_lines_is_given_up_at_the_total_deadline(
    tmp_path: Path,
) -> None:
    """One header line every 0.5 s never trips a per-read timeout: only a total one ends it."""
    store = _store(tmp_path)
    with WebhookReceiver() as hook:
        hook.trickle_s = 0.5
        settings = load_settings(
            environ={"THINNKA_STATE_DIR": str(tmp_path), "PROGRESS_WEBHOOK_URL": hook.url},
            cwd=tmp_path,
        )
        run = store.create_run(RunOptions(repo_id="org/m"))
        started = time.monotonic()
        assert deliver_backlog(store, settings, timeout=3, policy=QUICK) == 1
        assert time.monotonic() - started < 5
        assert hook.trickled >= 1
        # A request of its own is bounded as well, by the policy's total, while nobody closes.
        policy = DeliveryPolicy(timeout_s=1.0, pause_s=60, poll_s=0.05)
        notifier = _notifier(store, run.id, [Sink("webhook", hook.url)], policy=policy)
        notifier.event("note", "one")
        time.sleep(2.5)
        assert hook.trickled >= 2  # the first post was given up, the sink paused
        started = time.monotonic()
        notifier.close(timeout=2)
        assert time.monotonic() - started < 1  # a paused sink is not waited for on exit
    assert store.outbox.counts(run.id, ["webhook"])["webhook"]["pending"] == 2


@pytest.mark.timeout(60)
def test_closing_waits_at_most_its_budget_for_a_sink_that_does_not_answer(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m"))
    with WebhookReceiver() as hook:
        hook.trickle_s = 0.5
        notifier = _notifier(store, run.id, [Sink("webhook", hook.url)])
        notifier.event("note", "one")
        started = time.monotonic()
        notifier.close(timeout=1.5)
        assert time.monotonic() - started < 2.5
    assert store.outbox.counts(run.id, ["webhook"])["webhook"]["pending"] == 2


# ------------------------------------------------------------------ sink URLs given by flag
FLAG_WEBHOOK = "http://127.0.0.1:9/hook/CANARYflagWebhookToken00042"
FLAG_DISCORD = "http://127.0.0.1:9/api/webhooks/7/CANARYflagDiscordToken000042"


def test_sink_urls_given_by_flag_never_reach_the_database(tmp_path: Path) -> None:
    store = _store(tmp_path)
    options = RunOptions(
        repo_id="org/m", progress_url=FLAG_WEBHOOK, discord_webhook_url=FLAG_DISCORD
    )
    run = store.create_run(options, owner="me")
    stored = store.get(run.id).options
    assert (stored.progress_url, stored.discord_webhook_url) == (None, None)
    assert stored.flag_sinks == ("discord", "webhook")  # what a resume must be told again
    database = (tmp_path / "thinnka.db").read_bytes()
    assert b"CANARYflag" not in database


def test_resume_without_a_flag_sinks_url_says_so_and_keeps_its_events(tmp_path: Path) -> None:
    from thinnka.events.sinks import sink_names
    from thinnka.operations import notifier_for

    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m", discord_webhook_url=FLAG_DISCORD))
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path)
    output = Silent()
    notifier = notifier_for(settings, store.get(run.id).options, output, store)
    assert notifier.sinks == [] and output.events == ["warning"]
    # Its events are still counted as waiting for Discord (shown by `show`).
    names = sink_names(settings, store.get(run.id).options)
    assert names == ["discord"] and store.outbox.counts(run.id, names)["discord"]["pending"] >= 1
    given = notifier_for(
        settings, RunOptions(repo_id="org/m", discord_webhook_url=FLAG_DISCORD), Silent(), store
    )
    assert [sink.name for sink in given.sinks] == ["discord"]


def test_an_event_the_outbox_cannot_take_is_logged_and_the_run_goes_on(tmp_path: Path) -> None:
    """A broken outbox write is logged (naming the event) and never raised into the run."""
    from sqlalchemy import text
    from structlog.testing import capture_logs

    store = _store(tmp_path)
    run = store.create_run(RunOptions(repo_id="org/m"))
    notifier = _notifier(store, run.id, [])
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE outbox_deliveries"))
        connection.execute(text("DROP TABLE outbox_events"))
    with capture_logs() as logs:
        notifier.event("note", "hello")  # raised TypeError from the logging call before
    assert notifier.inner.events == ["note"]  # type: ignore[attr-defined]
    [logged] = [entry for entry in logs if entry["event"].startswith("could not write")]
    assert logged["kind"] == "note" and logged["log_level"] == "error"
    assert "exc_info" not in logged  # one line: the store said what is wrong
    notifier.close(timeout=1)


def test_notifier_for_reads_logging_first_step_from_the_overrides(tmp_path: Path) -> None:
    from thinnka.operations import notifier_for

    settings = load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path)
    off = RunOptions(repo_id="org/m", overrides=(("logging_first_step", "false"),))
    assert notifier_for(settings, off, Silent())._first_logged is False
    assert notifier_for(settings, RunOptions(repo_id="org/m"), Silent())._first_logged is True


def _logged_steps(
    tmp_path: Path, options: RunOptions, *, bar_total: int | None = None
) -> list[int]:
    """The steps a run's three logged dicts are stored as (the recipes log the first step)."""
    from thinnka.operations import notifier_for

    settings = load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path)
    store = open_store(settings)
    run = store.create_run(options, owner="me")
    log = settings.remote_log(run.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"[train] {{'loss': {loss}, 'epoch': 0.1}}\n" for loss in (3, 2, 1)))
    notifier = notifier_for(settings, options, Silent(), store)
    notifier.run_id = run.id  # catches up the local copy
    if bar_total is not None:
        notifier.progress("train", 0, bar_total, f"  0%|          | 0/{bar_total} [00:00<?, ?it/s]")
    notifier.close(timeout=1)
    return [step for step, _ in store.metrics.series(run.id).get("loss", [])]


def test_a_fractional_logging_steps_is_a_share_of_the_runs_total_steps(tmp_path: Path) -> None:
    """transformers reads logging_steps 0.1 as every ceil(0.1 × total) steps: of 45 steps,
    every 5 (the dicts were stored as steps 1, 2, 3 before)."""
    tenth = (("logging_steps", "0.1"),)
    options = RunOptions(repo_id="org/m", max_steps=45, overrides=tenth)
    assert _logged_steps(tmp_path / "max-steps", options) == [1, 5, 10]
    set_steps = RunOptions(repo_id="org/m", max_steps=45, overrides=(*tenth, ("max_steps", "20")))
    assert _logged_steps(tmp_path / "set", set_steps) == [1, 2, 4]  # --set max_steps wins
    # A run of epochs: only the trainer knows its total, and its step bar shows it.
    epochs = RunOptions(repo_id="org/m", overrides=(("logging_steps", "0.25"),))
    assert _logged_steps(tmp_path / "no-bar", epochs) == []  # not numbered by a guess
    assert _logged_steps(tmp_path / "bar", epochs, bar_total=40) == [1, 10, 20]
    whole = RunOptions(repo_id="org/m", max_steps=45, overrides=(("logging_steps", "5"),))
    assert _logged_steps(tmp_path / "whole", whole) == [1, 5, 10]

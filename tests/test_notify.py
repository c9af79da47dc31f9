"""Progress notifications, delivered to a real HTTP receiver."""

from __future__ import annotations

from typing import Any

from tests.fakes.webhook import WebhookReceiver
from thinnka.notify import Notifier, discord_text


class Silent:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def event(self, name: str, message: str, **fields: Any) -> None:
        return

    def line(self, stage: str, text: str) -> None:
        self.lines.append(text)

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        return


def test_events_reach_the_webhook_and_discord_without_secrets() -> None:
    with WebhookReceiver() as hook, WebhookReceiver() as discord:
        discord.throttle = 1  # the first Discord post is rate limited, then retried
        notifier = Notifier(
            Silent(), webhook_url=hook.url, discord_url=discord.url, repo_id="org/m",
            secrets=["hf_SECRET"], run_id="r-abc123",
        )  # fmt: skip
        notifier.event("start", "Run r-abc123 created.")
        notifier.event("error", "token hf_SECRET refused")
        notifier.close()
    assert hook.events() == ["start", "error"]
    first = hook.received[0]
    assert first.keys() >= {"project", "run_id", "repo_id", "event", "timestamp", "message"}
    assert first["run_id"] == "r-abc123" and first["repo_id"] == "org/m"
    assert "hf_SECRET" not in str(hook.received) and "***" in hook.received[1]["message"]
    assert [item["content"] for item in discord.received] == [
        "[thinnka | org/m] start: Run r-abc123 created.",
        "[thinnka | org/m] error: token *** refused",
    ]


def test_output_lines_are_throttled_to_the_latest_one_a_second() -> None:
    with WebhookReceiver() as hook:
        inner = Silent()
        notifier = Notifier(inner, webhook_url=hook.url, discord_url=None, repo_id="o/m",
                            secrets=[])  # fmt: skip
        for i in range(50):
            notifier.line("train", f"step {i}")
        notifier.close()
    assert len(inner.lines) == 50  # the terminal sees everything
    messages = [item["message"] for item in hook.received]
    assert messages[0] == "step 0" and messages[-1] == "step 49" and len(messages) == 2
    assert {item["stage"] for item in hook.received} == {"train"}


def test_discord_text_is_cut_to_2000_characters_keeping_the_end() -> None:
    text = discord_text({"repo_id": "o/m", "event": "error", "message": "x" * 5000 + "END"})
    assert len(text) <= 2000 and text.endswith("END") and text.startswith("[thinnka | o/m] error")


def test_an_unreachable_endpoint_does_not_block() -> None:
    import time

    notifier = Notifier(Silent(), webhook_url="http://127.0.0.1:9/x", discord_url=None,
                        repo_id="o/m", secrets=[])  # fmt: skip
    started = time.monotonic()
    notifier.event("start", "hello")
    assert time.monotonic() - started < 0.1
    notifier.close(timeout=5)
    assert time.monotonic() - started < 6

"""No secret in any output: forced internal errors, malformed tokens, URLs with passwords.

Canary values are set for every secret thinnka knows; after each command stdout, stderr
and every file of the state folder are scanned for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.validation.conftest import WANDB_CANARY, Outcome, PlanWorld
from tests.world.sshd import generate_key
from tests.world.webhook import WebhookReceiver

DISCORD_TOKEN = "discord-canary-9b8a7c6d5e4f"


def _state_text(world: PlanWorld) -> str:
    state = world.workdir / "state"
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in state.rglob("*") if p.is_file()
    )


def _assert_clean(world: PlanWorld, result: Outcome, secrets: list[str]) -> None:
    stored = _state_text(world)
    for secret in secrets:
        for where, text in (("stdout", result.out), ("stderr", result.err), ("state", stored)):
            assert secret not in text, f"{secret[:6]}… leaked to {where}"


@pytest.mark.parametrize("log_json", [True, False], ids=["json-logs", "console-logs"])
def test_an_internal_error_shows_no_secret_anywhere(
    plan_world: PlanWorld, monkeypatch: pytest.MonkeyPatch, log_json: bool
) -> None:
    import huggingface_hub

    keys = generate_key(plan_world.workdir / "id_ed25519", "leak-test")
    with WebhookReceiver() as hook:
        discord = f"{hook.url}/{DISCORD_TOKEN}"
        plan_world.write_dotenv(
            WANDB_API_KEY=WANDB_CANARY,
            DISCORD_WEBHOOK_URL=discord,
            SSH_PUBLIC_KEY=keys.public_key,
            SSH_PRIVATE_KEY_PATH=str(keys.private_key_path),
        )

        real_session = huggingface_hub.get_session

        class CrashingWhoami:
            """huggingface_hub's HTTP session, failing on whoami in a frame that holds the
            token, with an error text quoting it (as h11 does)."""

            def get(self, url: str, *, headers: dict[str, str], **options: Any) -> Any:
                if url.endswith("/api/whoami-v2"):
                    bearer = headers["authorization"].encode()
                    raise RuntimeError(f"Illegal header value {bearer!r}")
                return real_session().get(url, headers=headers, **options)

        monkeypatch.setattr(huggingface_hub, "get_session", CrashingWhoami)
        args = ["run", "--repo-id", plan_world.model, "--sft", "--report-to", "wandb"]
        result = plan_world.cli(*args, *(["--log-json"] if log_json else []))
    assert result.code == 1, result.err
    # The Hub client translates the library's failure; its text is scrubbed of the token.
    assert "Illegal header value" in result.err
    assert plan_world.runpod.ledger() == []
    _assert_clean(plan_world, result, [*plan_world.secrets(), discord, DISCORD_TOKEN])


@pytest.mark.parametrize("log_json", [True, False], ids=["json-logs", "console-logs"])
def test_an_untranslated_internal_error_logs_no_frame_locals(
    plan_world: PlanWorld, monkeypatch: pytest.MonkeyPatch, log_json: bool
) -> None:
    """A bug inside thinnka (no client to translate it): the traceback carries no locals."""
    canary = plan_world.hub_env.tokens.write
    keys = generate_key(plan_world.workdir / "id_ed25519", "leak-test")
    plan_world.write_dotenv(
        SSH_PUBLIC_KEY=keys.public_key, SSH_PRIVATE_KEY_PATH=str(keys.private_key_path)
    )

    def crashing_estimate(*_: Any, **__: Any) -> Any:
        token = canary  # a frame local holding a secret, as a library frame would
        raise RuntimeError(f"estimator bug (token length {len(token)})")

    monkeypatch.setattr("thinnka.handlers.estimate.memory_estimate", crashing_estimate)
    args = ["run", "--repo-id", plan_world.model, "--sft"]
    result = plan_world.cli(*args, *(["--log-json"] if log_json else []))
    assert result.code == 1, result.err
    assert "Internal error" in result.err and "estimator bug" in result.err
    assert plan_world.runpod.ledger() == []
    _assert_clean(plan_world, result, plan_world.secrets())


def test_a_token_with_an_embedded_newline_is_refused_by_name(plan_world: PlanWorld) -> None:
    token = plan_world.hub_env.tokens.write
    env = plan_world.workdir / ".env"
    env.write_text(env.read_text().replace(f"HF_TOKEN={token}", f'HF_TOKEN="{token}\\nX=1"'))
    for command in (["plan", "--json"], ["run"]):
        result = plan_world.cli(*command, "--repo-id", plan_world.model, "--sft")
        assert result.code == 2, result.err
        assert "HF_TOKEN is malformed" in result.err
        _assert_clean(plan_world, result, [token])
        plan_world.assert_nothing_created()


@pytest.mark.parametrize("variable", ["HF_ENDPOINT", "RUNPOD_API_BASE_URL"])
def test_a_url_with_a_password_is_refused_without_showing_it(
    plan_world: PlanWorld, variable: str
) -> None:
    url = plan_world.dotenv[variable]
    plan_world.write_dotenv(**{variable: url.replace("http://", "http://user:PASSW0RD1@")})
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft")
    assert result.code == 2, result.err
    assert f"{variable} must not carry a user name or password (http://***@" in result.err
    _assert_clean(plan_world, result, ["PASSW0RD1", "user:PASSW0RD1"])
    doctor = plan_world.cli("doctor")
    assert doctor.code == 1
    _assert_clean(plan_world, doctor, ["PASSW0RD1"])
    lines = doctor.out.splitlines()
    assert any("settings" in line and variable in line for line in lines), doctor.out
    if variable == "RUNPOD_API_BASE_URL":
        runpod = next(line for line in lines if "runpod:" in line)
        assert "key" not in runpod.lower(), runpod  # the URL is at fault, not the API key


def test_error_messages_pass_the_scrubber(tmp_path: Path) -> None:
    from thinnka.cli.exit_codes import run_app
    from thinnka.errors import ConfigError
    from thinnka.logs import configure_logging

    configure_logging(json=True, secrets=["hf_scrubME123"])
    import typer

    app = typer.Typer()

    @app.command()
    def boom() -> None:
        raise ConfigError("the Hub said: token hf_scrubME123 is invalid")

    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert run_app(app, []) == 2
    assert "hf_scrubME123" not in err.getvalue() and "token *** is invalid" in err.getvalue()


DEPENDENCY_CANARY = "ghp_canaryDependencyToken0042"


@pytest.mark.parametrize(
    ("item", "said"),
    [
        (f"pkg @ git+https://user:{DEPENDENCY_CANARY}@git.example.org/org/pkg",
         "must not carry a user name or password"),
        (f"pkg@https://{DEPENDENCY_CANARY}@github.com/org/pkg/archive/main.zip",
         "must not carry a user name or password"),
        (f"git+https://user:{DEPENDENCY_CANARY}@git.example.org/org/pkg",
         "must not carry a user name or password"),
        (f"pkg @ git+https://user:{DEPENDENCY_CANARY}@git.example.org/o/p\n",
         "must not carry a user name or password"),
        ("pkg @ file:///home/me/pkg", "names a path on this machine"),
        ("pkg @ /home/me/pkg", "names a path on this machine"),
        ("pkg @ git+ssh://github.com/org/pkg", "over http(s) only"),
    ],
    ids=["vcs-user-password", "token-as-user", "not-a-requirement", "two-lines", "file-url",
         "local-path", "ssh"],
)  # fmt: skip
def test_a_custom_dependency_with_a_credential_or_a_local_path_is_refused_unshown(
    plan_world: PlanWorld, item: str, said: str
) -> None:
    for command in (["plan", "--json"], ["run"]):
        result = plan_world.cli(*command, "--repo-id", plan_world.model, "--sft",
                                "--custom-dependencies", f"numpy, {item}")  # fmt: skip
        assert result.code == 2, (command, result.err)
        assert said in result.err and "Traceback" not in result.err, result.err
        _assert_clean(plan_world, result, [DEPENDENCY_CANARY, *plan_world.secrets()])
        plan_world.assert_nothing_created()


def test_a_public_custom_dependency_url_is_accepted(plan_world: PlanWorld) -> None:
    items = "pkg @ git+https://git.example.org/org/pkg@v1.2, other @ https://h.example/o.whl"
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                            "--custom-dependencies", items)  # fmt: skip
    assert result.code == 0, result.err

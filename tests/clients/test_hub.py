"""The Hub client against the emulated Hub: facts, faults, and every library error translated.

Runs without torch/transformers (the emulator serves metadata-only stand-ins, see
`tests.world._hub_light`), so `.ci/run` also runs this file under huggingface_hub 2.x.
"""

from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.hub_world import hub_environment, patch_imported_clients
from tests.world._hub_light import LIGHT_PARAMETERS, light_artifacts
from tests.world.hub import FakeHub
from thinnka.clients.hub import HubClient
from thinnka.clients.hub_errors import http_modules, translate_hub_error
from thinnka.errors import (
    AuthError,
    ConfigError,
    NotFoundError,
    PreflightError,
    RemoteError,
    ThinnkaError,
    TransientError,
)

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
MODEL_INFO = "/api/models/"


@pytest.fixture(scope="module")
def light_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with FakeHub(artifacts=light_artifacts(tmp_path_factory.mktemp("light"))) as hub:
        yield hub
        errors = hub.internal_errors()
    assert not errors, "the fake Hub hit internal errors:\n" + "\n".join(errors)


@pytest.fixture
def hub(light_hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    light_hub.reset()
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    patch_imported_clients(monkeypatch, light_hub.endpoint, tmp_path / "hf")
    yield light_hub
    light_hub.reset()


def client(hub: FakeHub, **kwargs: float) -> HubClient:
    options: dict[str, float] = {"backoff_max": 0.01}
    options.update(kwargs)
    return HubClient(endpoint=hub.endpoint, token=hub.tokens.write, **options)  # type: ignore[arg-type]


def attempts(hub: FakeHub, path: str) -> list[int]:
    return [r.status for r in hub.requests() if r.path.startswith(path)]


def main_commit(hub: FakeHub, repo_id: str) -> str:
    repo = hub.state.find_repo("model", repo_id)
    assert repo is not None
    return repo.resolve("main").oid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- against the emulator
def test_model_facts_and_token_come_from_the_hub(hub: FakeHub) -> None:
    hub_client = client(hub)
    model = hub_client.model(hub.models.chat)
    assert model.safetensors_total == LIGHT_PARAMETERS
    assert model.has_chat_template and model.model_type == "qwen2"
    assert hub_client.whoami().may_write(hub.user)
    assert hub_client.last_commit_at("thinnka-tester/absent") is None


# What a fresh process imports and gets from the preflight's two reads.
_FRESH_READS = """
import json, sys
from pathlib import Path
from thinnka.clients.hub import HubClient
endpoint, token, repo, home = sys.argv[1:5]
client = HubClient(endpoint=endpoint, token=token)
model, me = client.model(repo), client.whoami()
heavy = ("huggingface_hub.hf_api", "huggingface_hub.file_download", "tqdm", "filelock")
print(json.dumps({
    "files": dict(model.files), "total": model.safetensors_total, "sha": model.sha,
    "template": model.has_chat_template, "type": model.model_type, "gated": model.gated,
    "config": model.config, "user": me.user, "role": me.role, "may_write": me.may_write(me.user),
    "loaded": [name for name in heavy if name in sys.modules],
    "cached": sorted(str(p.relative_to(home)) for p in Path(home).rglob("*") if p.is_file()),
}))
"""


def test_the_preflight_reads_leave_hfapi_downloads_and_the_cache_alone(
    hub: FakeHub, tmp_path: Path
) -> None:
    # The run's path to the pod's create imports neither HfApi nor the download machinery
    # (0.14 s of CPU, issue 26), and writes nothing into the user's Hugging Face cache (where
    # a lone tokenizer_config.json once made `thinnka plan` count with a tokenizer that had
    # no vocabulary).
    home = tmp_path / "fresh-hf"
    env = {**hub_environment(hub, home), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_DISABLE_TELEMETRY")  # as a user has it: telemetry on
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_READS, hub.endpoint, hub.tokens.write, hub.models.chat,
         str(home)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["loaded"] == [] and got["cached"] == []
    listed = {path: len(data) for path, data in hub.files(hub.models.chat).items()}
    assert got["files"] == listed and got["total"] == LIGHT_PARAMETERS
    assert got["sha"] == main_commit(hub, hub.models.chat)
    assert got["template"] and got["type"] == "qwen2" and got["gated"] is False
    assert got["config"]["vocab_size"] == 512  # the file itself, not the Hub's extract of it
    assert (got["user"], got["role"], got["may_write"]) == (hub.user, "write", True)


def test_the_reads_send_the_token_only_as_a_header_and_read_the_listed_commit(
    hub: FakeHub,
) -> None:
    hub.clear_requests()
    model = client(hub).model(hub.models.chat_jinja)  # its template is a file of its own
    assert model.has_chat_template
    seen = hub.requests()
    assert {r.user for r in seen} == {hub.user}  # every read authenticated...
    assert not any(hub.tokens.write in f"{r.path}?{r.query}" for r in seen)  # ...by header
    info = [r for r in seen if r.path.startswith(MODEL_INFO)]
    assert len(info) == 1 and "blobs=true" in info[0].query  # the files' sizes
    files = sorted(r.path for r in seen if "/resolve/" in r.path)
    assert model.sha == main_commit(hub, hub.models.chat_jinja)
    prefix = f"/{hub.models.chat_jinja}/resolve/{model.sha}/"
    assert files == [prefix + name for name in ("chat_template.jinja", "config.json",
                                                "tokenizer_config.json")]  # fmt: skip


def test_the_real_hubs_redirect_of_a_small_file_is_followed(hub: FakeHub) -> None:
    hub.state.resolve_redirects = True
    model = client(hub).model(hub.models.chat)
    assert model.config is not None and model.has_chat_template
    statuses = {r.status for r in hub.requests() if "/resolve/" in r.path}
    cached = [r for r in hub.requests() if r.path.startswith("/api/resolve-cache/")]
    assert statuses == {307} and len(cached) == 2 and {r.user for r in cached} == {hub.user}


def test_a_file_read_that_fails_is_retried_then_a_transient_error(hub: FakeHub) -> None:
    resolve = f"/{hub.models.chat}/resolve/"
    hub.inject_fault(resolve, 502, times=1)
    assert client(hub).model(hub.models.chat).config is not None
    hub.clear_requests()
    hub.inject_fault(resolve, 503, times=50)
    with pytest.raises(TransientError, match="HTTP 503"):
        client(hub, attempts=2).model(hub.models.chat)
    assert attempts(hub, MODEL_INFO) == [200, 200]


def test_a_malformed_repo_id_is_a_config_error_before_any_request(hub: FakeHub) -> None:
    hub.clear_requests()
    with pytest.raises(ConfigError, match="repo id"):
        client(hub).model("a/b/c")
    assert hub.requests() == []


def test_a_model_info_that_is_no_json_names_hf_endpoint(hub: FakeHub) -> None:
    hub.inject_fault(MODEL_INFO, 200, times=10)
    with pytest.raises(RemoteError, match="HF_ENDPOINT") as caught:
        client(hub).model(hub.models.chat)
    assert not isinstance(caught.value, TransientError)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_rate_limit_or_server_error_is_retried(hub: FakeHub, status: int) -> None:
    hub.inject_fault(MODEL_INFO, status, times=1)
    assert client(hub).model(hub.models.chat).repo_id == hub.models.chat
    assert attempts(hub, MODEL_INFO) == [status, 200]


def test_retries_are_bounded_and_end_in_a_transient_error(hub: FakeHub) -> None:
    hub.inject_fault(MODEL_INFO, 503, times=50)
    with pytest.raises(TransientError, match="HTTP 503"):
        client(hub, attempts=3).model(hub.models.chat)
    assert attempts(hub, MODEL_INFO) == [503, 503, 503]


def test_a_refused_token_is_an_auth_error_never_retried(hub: FakeHub) -> None:
    hub.inject_fault("/api/whoami-v2", 401, times=5)
    with pytest.raises(AuthError):
        client(hub).whoami()
    assert attempts(hub, "/api/whoami-v2") == [401]


def test_a_hub_that_answers_too_late_is_a_timeout(hub: FakeHub) -> None:
    hub.inject_fault(MODEL_INFO, 0, action="delay", delay_s=1.5, times=2)
    with pytest.raises(TransientError, match="timed out") as caught:
        client(hub, timeout=0.3, attempts=2).model(hub.models.chat)
    assert hub.endpoint in caught.value.message and "HF_ENDPOINT" in caught.value.message


def test_a_dropped_connection_is_retried_then_reported(hub: FakeHub) -> None:
    hub.inject_fault(MODEL_INFO, 0, action="drop", times=1)
    assert client(hub).model(hub.models.chat).repo_id == hub.models.chat
    hub.clear_requests()
    hub.inject_fault(MODEL_INFO, 0, action="drop", times=10)
    with pytest.raises(TransientError, match="cannot be reached"):
        client(hub, attempts=2).model(hub.models.chat)
    assert attempts(hub, MODEL_INFO) == [0, 0]


def test_an_unreachable_hub_is_one_line_naming_the_endpoint_and_the_setting() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    hub_client = HubClient(endpoint=endpoint, token="hf_x", attempts=2, backoff_max=0.01)
    for call in (lambda: hub_client.model("a/b"), hub_client.whoami):
        with pytest.raises(TransientError) as caught:
            call()
        message = caught.value.message
        assert f"Hub at {endpoint} cannot be reached" in message and "HF_ENDPOINT" in message
        assert "\n" not in message


def test_a_server_that_is_no_hub_is_a_remote_error_naming_hf_endpoint(hub: FakeHub) -> None:
    # A 200 without the Hub's X-Repo-Commit/ETag: the download raises LocalEntryNotFoundError.
    hub.inject_fault(f"/{hub.models.chat}/resolve/", 200, times=10)
    with pytest.raises(RemoteError, match="HF_ENDPOINT") as caught:
        client(hub).model(hub.models.chat)
    assert not isinstance(caught.value, TransientError)


@pytest.mark.parametrize(
    ("repo", "preflight_reason"),
    [("gated-labs/qwen2-gated-manual", "gated"), ("nobody/absent", "model_not_found")],
)
def test_gated_and_missing_models_are_preflight_refusals(
    hub: FakeHub, repo: str, preflight_reason: str
) -> None:
    with pytest.raises(PreflightError) as caught:
        client(hub).model(repo)
    assert caught.value.reason == preflight_reason


# ---------------------------------------------------------------- every library error
def _library_errors() -> list[type[BaseException]]:
    """Every exception class huggingface_hub and its HTTP library (httpx / httpx2) define."""
    import huggingface_hub.errors as hub_errors

    modules = [hub_errors, *http_modules()]
    found: dict[type[BaseException], None] = {}
    for module in modules:
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Exception) and value.__module__.split(".")[0] in (
                "huggingface_hub",
                "httpx",
                "httpx2",
            ):
                found[value] = None
    # and whatever subclasses the library keeps elsewhere
    for base in list(found):
        stack = list(base.__subclasses__())
        while stack:
            sub = stack.pop()
            if sub.__module__.split(".")[0] in ("huggingface_hub", "httpx", "httpx2"):
                found.setdefault(sub, None)
            stack.extend(sub.__subclasses__())
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def _instance(cls: type[BaseException], status: int = 500) -> BaseException:
    """An instance of ``cls`` built the way the library builds it (message, response...)."""
    from huggingface_hub.utils import httpx as hub_http  # the HTTP library hub uses

    root = cls.__module__.split(".")[0]
    http = hub_http if root == "huggingface_hub" else sys.modules[root]
    request = http.Request("GET", "https://hub.test/api/models/a/b")
    response = http.Response(status, request=request)
    candidates = {
        "message": "boom", "msg": "boom", "response": response, "request": request,
        "cache_dir": "/tmp", "uri": "hf://x", "snapshot_path": "/tmp", "field": "f",
        "cause": ValueError("x"), "validator": "v", "error_code": "e", "cmd": "ls",
        "result": None, "status_code": status, "server_message": "boom",
    }  # fmt: skip
    signature = inspect.signature(cls.__init__)
    args: list[object] = []
    kwargs: dict[str, object] = {}
    for name, param in list(signature.parameters.items())[1:]:
        if param.kind is param.VAR_POSITIONAL and not args:
            args.append("boom")
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is not param.empty and name not in ("response", "request"):
            continue
        value = candidates.get(name, "boom")
        if param.kind is param.KEYWORD_ONLY:
            kwargs[name] = value
        else:
            args.append(value)
    try:
        return cls(*args, **kwargs)
    except Exception:  # a few take other shapes; the message alone does for those
        return cls.__new__(cls)


LIBRARY_ERRORS = _library_errors()


def test_the_enumeration_sees_the_hierarchies() -> None:
    names = {cls.__name__ for cls in LIBRARY_ERRORS}
    assert {"HfHubHTTPError", "GatedRepoError", "LocalEntryNotFoundError"} <= names
    assert {"ConnectError", "ReadTimeout", "RemoteProtocolError", "HTTPStatusError"} <= names
    assert len(LIBRARY_ERRORS) > 40


# What the classes that matter to thinnka become (the rest must merely be a ThinnkaError).
EXPECTED: dict[str, type[ThinnkaError]] = {
    "GatedRepoError": PreflightError, "RepositoryNotFoundError": PreflightError,
    "DisabledRepoError": PreflightError, "RevisionNotFoundError": NotFoundError,
    "RemoteEntryNotFoundError": NotFoundError, "HfHubHTTPError": TransientError,
    "LocalTokenNotFoundError": AuthError, "OfflineModeIsEnabled": ConfigError,
    "HFValidationError": ConfigError, "LocalEntryNotFoundError": RemoteError,
    "BadRequestError": RemoteError, "ConnectError": TransientError,
    "ConnectTimeout": TransientError, "ReadTimeout": TransientError,
    "RemoteProtocolError": TransientError, "ReadError": TransientError,
    "HTTPStatusError": TransientError, "InvalidURL": ConfigError,
    "UnsupportedProtocol": ConfigError, "DecodingError": RemoteError,
}  # fmt: skip


@pytest.mark.parametrize("cls", LIBRARY_ERRORS, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_library_error_becomes_a_thinnka_error(cls: type[BaseException]) -> None:
    translated = translate_hub_error(_instance(cls), endpoint="https://hub.test", repo_id="a/b")
    assert isinstance(translated, ThinnkaError)
    assert translated.reason and "\n" not in translated.message
    if cls.__name__ in EXPECTED:
        assert type(translated) is EXPECTED[cls.__name__], translated.message


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, AuthError), (403, AuthError), (404, NotFoundError), (429, TransientError),
     (500, TransientError), (503, TransientError), (400, RemoteError), (409, RemoteError)],
)  # fmt: skip
def test_hub_http_errors_map_by_status(status: int, expected: type[ThinnkaError]) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    error = _instance(HfHubHTTPError, status)
    translated = translate_hub_error(error, endpoint="https://hub.test", repo_id="a/b")
    assert type(translated) is expected


def test_download_failures_and_settings_map_to_their_class() -> None:
    from huggingface_hub import errors as hub

    endpoint = "http://127.0.0.1:9"
    for http in http_modules():
        connect = http.ConnectError("refused")
        try:
            raise hub.LocalEntryNotFoundError("cannot find the requested files") from connect
        except hub.LocalEntryNotFoundError as exc:
            offline = translate_hub_error(exc, endpoint=endpoint, repo_id="a/b")
        assert isinstance(offline, TransientError) and "cannot be reached" in offline.message
        timeout = translate_hub_error(http.ReadTimeout("slow"), endpoint=endpoint, repo_id=None)
        assert isinstance(timeout, TransientError) and "timed out" in timeout.message
        bad_url = translate_hub_error(
            http.UnsupportedProtocol("x"), endpoint="ftp://x", repo_id=None
        )
        assert isinstance(bad_url, ConfigError)
    cases = {
        hub.LocalTokenNotFoundError("no token"): AuthError,
        hub.OfflineModeIsEnabled("offline"): ConfigError,
        FileNotFoundError("gone"): TransientError,
        ConnectionResetError("reset"): TransientError,
        PermissionError("read-only"): ConfigError,
    }
    for error, expected in cases.items():
        assert type(translate_hub_error(error, endpoint=endpoint, repo_id="a/b")) is expected

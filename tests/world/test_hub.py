"""Faithfulness of the Hub emulator, judged by real clients nobody here wrote.

huggingface_hub, transformers and datasets run unmodified against `FakeHub`; if the emulator
drifted from the Hub's protocol (docs/hub.md) these clients would raise the wrong
exception class, re-download, or refuse to parse its answers.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    DisabledRepoError,
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.plugins.hub_world import HubEnv
from tests.world._hub_model import git_blob_sha1
from tests.world.hub import FakeHub

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


def api(env: HubEnv, token: str | bool | None = None) -> HfApi:
    """A client pinned to the emulator (explicit endpoint: no reliance on import-time env)."""
    return HfApi(endpoint=env.endpoint, token=env.tokens.write if token is None else token)


def calls(hub: FakeHub) -> list[str]:
    return [f"{r.method} {r.path} {r.status}" for r in hub.requests()]


# -- model_info --------------------------------------------------------------------------------


def test_model_info_reports_files_and_parameter_counts(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    info = api(hub_env).model_info(hub.models.chat, files_metadata=True)
    files = hub.files(hub.models.chat)
    assert info.id == hub.models.chat
    assert info.gated is False and info.private is False
    assert info.sha is not None and len(info.sha) == 40
    assert info.safetensors is not None
    assert info.safetensors.parameters == {"F32": hub.artifacts.num_parameters}
    assert info.safetensors.total == hub.artifacts.num_parameters
    assert info.config is not None and info.config["model_type"] == "qwen2"
    assert "<|im_start|>" in info.config["tokenizer_config"]["chat_template"]
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == set(files)
    weights = siblings["model.safetensors"]
    assert weights.size == len(files["model.safetensors"])
    assert weights.lfs is not None
    assert weights.lfs.sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest()
    config = siblings["config.json"]
    assert config.lfs is None and config.blob_id == git_blob_sha1(files["config.json"])
    assert b"transformers_version" in files["config.json"]
    assert calls(hub) == [f"GET /api/models/{hub.models.chat} 200"]
    assert hub.requests()[0].query == "blobs=true"


def test_model_info_of_gated_repos_is_public(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    assert api(hub_env, token=False).model_info(hub.models.gated_denied).gated == "manual"
    assert api(hub_env, hub.tokens.read).model_info(hub.models.gated_denied).gated == "manual"
    assert api(hub_env).model_info(hub.models.gated_granted).gated == "auto"


def test_model_info_by_revision(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    client = api(hub_env)
    sha = client.model_info(hub.models.chat).sha
    assert sha is not None
    assert client.model_info(hub.models.chat, revision=sha).sha == sha
    with pytest.raises(RevisionNotFoundError):
        client.model_info(hub.models.chat, revision="no-such-branch")
    assert client.revision_exists(hub.models.chat, "main")
    assert not client.revision_exists(hub.models.chat, "nope")


def test_private_and_missing_repos_look_the_same(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    for client in (api(hub_env), api(hub_env, token=False)):
        for repo in (hub.models.private_other, "nobody/nothing"):
            with pytest.raises(RepositoryNotFoundError) as err:
                client.model_info(repo)
            assert err.value.response.status_code == (404 if client.token else 401)
            assert not client.repo_exists(repo)
    owner = api(hub_env, hub.tokens.other_user)
    assert owner.model_info(hub.models.private_other).private is True


# -- whoami ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "role", "writes"),
    [
        ("write", "write", None),
        ("read", "read", None),
        ("fine_grained_no_write", "fineGrained", False),
        ("fine_grained_write", "fineGrained", True),
    ],
)
def test_whoami_for_each_token_kind(
    hub_env: HubEnv, kind: str, role: str, writes: bool | None
) -> None:
    hub = hub_env.hub
    me = api(hub_env).whoami(token=getattr(hub.tokens, kind))
    assert me["name"] == hub.user
    assert [o["name"] for o in me["orgs"]] == [hub.org]
    token = me["auth"]["accessToken"]
    assert token["role"] == role
    if writes is None:
        assert "fineGrained" not in token
        return
    scoped = {e["entity"]["name"]: e["permissions"] for e in token["fineGrained"]["scoped"]}
    assert "repo.content.read" in scoped[hub.user]
    assert ("repo.write" in scoped[hub.user]) is writes


def test_whoami_with_unknown_token_is_401(hub_env: HubEnv) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api(hub_env).whoami(token="hf_not_a_real_token")
    assert err.value.response.status_code == 401


# -- downloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["config.json", "tokenizer_config.json"])
def test_hf_hub_download_then_cache_hit(hub_env: HubEnv, filename: str) -> None:
    hub = hub_env.hub
    kwargs = {"endpoint": hub.endpoint, "token": hub.tokens.read, "cache_dir": hub_env.home}
    path = hf_hub_download(hub.models.chat, filename, **kwargs)
    assert Path(path).read_bytes() == hub.files(hub.models.chat)[filename]
    url = f"/{hub.models.chat}/resolve/main/{filename}"
    assert calls(hub) == [f"HEAD {url} 200", f"GET {url} 200"]
    hub.clear_requests()
    assert hf_hub_download(hub.models.chat, filename, **kwargs) == path
    assert calls(hub) == [f"HEAD {url} 200"]


def test_resolve_redirects_a_small_file_as_the_real_hub_does(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    hub.state.resolve_redirects = True
    kwargs = {"endpoint": hub.endpoint, "token": hub.tokens.read, "cache_dir": hub_env.home}
    path = hf_hub_download(hub.models.chat, "config.json", **kwargs)
    assert Path(path).read_bytes() == hub.files(hub.models.chat)["config.json"]
    seen = calls(hub)
    assert seen[0] == f"HEAD /{hub.models.chat}/resolve/main/config.json 307"
    assert seen[1].startswith("HEAD /api/resolve-cache/models/") and seen[1].endswith(" 200")
    assert seen[2].startswith("GET /api/resolve-cache/models/") and seen[2].endswith(" 200")
    with pytest.raises(GatedRepoError):  # the redirect comes after the access check
        hf_hub_download(hub.models.gated_denied, "config.json", **kwargs)


def test_gated_downloads(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    kwargs = {"endpoint": hub.endpoint, "cache_dir": hub_env.home}
    with pytest.raises(GatedRepoError) as err:
        hf_hub_download(hub.models.gated_denied, "config.json", token=hub.tokens.read, **kwargs)
    assert err.value.response.status_code == 403
    assert "not in the authorized list" in str(err.value)
    with pytest.raises(GatedRepoError) as err:
        hf_hub_download(hub.models.gated_granted, "config.json", token=False, **kwargs)
    assert err.value.response.status_code == 401
    path = hf_hub_download(
        hub.models.gated_granted, "tokenizer_config.json", token=hub.tokens.read, **kwargs
    )
    assert json.loads(Path(path).read_text())["eos_token"] == "<|im_end|>"
    no_gated = hub.add_token(hub.user, "fineGrained", can_read_gated=False)
    with pytest.raises(GatedRepoError, match="fine-grained token settings"):
        hf_hub_download(hub.models.gated_granted, "config.json", token=no_gated, **kwargs)
    client = api(hub_env, hub.tokens.read)
    assert client.repo_exists(hub.models.gated_denied)
    with pytest.raises(GatedRepoError):
        client.auth_check(hub.models.gated_denied)
    client.auth_check(hub.models.gated_granted)


def test_missing_file_repo_and_existence_checks(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    kwargs = {"endpoint": hub.endpoint, "token": hub.tokens.read, "cache_dir": hub_env.home}
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(hub.models.chat, "missing.bin", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "config.json", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        api(hub_env).model_info("nobody/nothing")
    client = api(hub_env, hub.tokens.read)
    assert client.file_exists(hub.models.chat, "config.json")
    assert not client.file_exists(hub.models.chat, "missing.bin")
    assert not client.file_exists("nobody/nothing", "config.json")
    assert client.repo_exists(hub.models.chat)


def test_snapshot_download(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    folder = api(hub_env, hub.tokens.read).snapshot_download(
        hub.models.chat, cache_dir=hub_env.home
    )
    got = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
    assert got == hub.files(hub.models.chat)


# -- uploads -----------------------------------------------------------------------------------


def test_create_repo_twice_with_exist_ok(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    client = api(hub_env)
    first = client.create_repo(f"{hub.user}/new-model", exist_ok=True)
    second = client.create_repo(f"{hub.user}/new-model", exist_ok=True)
    assert first == second == f"{hub.endpoint}/{hub.user}/new-model"
    assert first.repo_id == f"{hub.user}/new-model"
    with pytest.raises(HfHubHTTPError) as err:
        client.create_repo(f"{hub.user}/new-model")
    assert err.value.response.status_code == 409
    assert client.list_repo_files(f"{hub.user}/new-model") == [".gitattributes"]
    assert hub.commits() == []
    private = client.create_repo(f"{hub.org}/secret", private=True, repo_type="dataset")
    assert private == f"{hub.endpoint}/datasets/{hub.org}/secret"
    assert client.dataset_info(f"{hub.org}/secret").private is True


@pytest.mark.parametrize("kind", ["read", "fine_grained_no_write"])
def test_create_repo_refused_without_write(hub_env: HubEnv, kind: str) -> None:
    hub = hub_env.hub
    client = api(hub_env, getattr(hub.tokens, kind))
    with pytest.raises(HfHubHTTPError) as err:
        client.create_repo(f"{hub.user}/nope")
    assert err.value.response.status_code == 403
    assert "don't have the rights" in str(err.value)
    # exist_ok on an existing repo falls back to a GET, as huggingface_hub documents
    api(hub_env).create_repo(f"{hub.user}/exists")
    assert client.create_repo(f"{hub.user}/exists", exist_ok=True).repo_id == f"{hub.user}/exists"
    assert api(hub_env, hub.tokens.fine_grained_write).create_repo(f"{hub.user}/fg-ok")


def test_upload_folder_lands_in_ledger(hub_env: HubEnv, tmp_path: Path) -> None:
    hub = hub_env.hub
    repo_id = f"{hub.user}/uploaded"
    client = api(hub_env)
    client.create_repo(repo_id)
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# hello\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("x")
    info = client.upload_folder(repo_id=repo_id, folder_path=tmp_path, commit_message="first")
    [commit] = hub.commits(repo_id)
    assert commit.oid == info.oid and commit.summary == "first"
    assert commit.paths == ("README.md", "sub/x.txt")
    assert (commit.user, commit.token_role, commit.via) == (hub.user, "write", "http")
    assert sorted(client.list_repo_files(repo_id)) == [".gitattributes", "README.md", "sub/x.txt"]
    assert client.model_info(repo_id).card_data.license == "mit"
    client.upload_folder(repo_id=repo_id, folder_path=tmp_path)  # identical: no new commit
    assert len(hub.commits(repo_id)) == 1
    client.upload_file(path_or_fileobj=b"y", path_in_repo="sub/y.txt", repo_id=repo_id)
    client.delete_file("sub/x.txt", repo_id=repo_id)
    assert sorted(client.list_repo_files(repo_id)) == [".gitattributes", "README.md", "sub/y.txt"]
    assert hub.commits(repo_id)[-1].deleted == ("sub/x.txt",)


def test_read_token_refused_on_upload(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    api(hub_env).create_repo(f"{hub.user}/target")
    with pytest.raises(HfHubHTTPError) as err:
        api(hub_env, hub.tokens.read).upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=f"{hub.user}/target"
        )
    assert err.value.response.status_code == 403
    assert hub.commits() == []


def test_lfs_upload_path_when_the_fake_answers_lfs(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    hub.state.lfs_uploads = True
    repo_id = f"{hub.user}/lfs"
    client = api(hub_env)
    client.create_repo(repo_id)
    client.upload_file(path_or_fileobj=b"\0" * 2000, path_in_repo="w.bin", repo_id=repo_id)
    assert hub.files(repo_id)["w.bin"] == b"\0" * 2000
    assert any("/info/lfs/objects/batch" in c for c in calls(hub))
    [entry] = [f for f in client.list_repo_tree(repo_id) if f.path == "w.bin"]
    assert entry.lfs is not None and entry.lfs.size == 2000


def test_tree_pagination_and_folders(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    hub.state.tree_page_size = 2
    files = api(hub_env).list_repo_files(hub.datasets.sft, repo_type="dataset")
    assert sorted(files) == sorted(hub.files(hub.datasets.sft, repo_type="dataset"))
    assert sum("/tree/" in c for c in calls(hub)) >= 2
    top = api(hub_env).list_repo_tree(hub.datasets.sft, repo_type="dataset")
    assert {e.path for e in top} == {".gitattributes", "README.md", "data"}
    with pytest.raises(EntryNotFoundError):
        list(api(hub_env).list_repo_tree(hub.models.chat, path_in_repo="nope"))


def test_paths_info_refs_and_expanded_tree(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    client = api(hub_env, hub.tokens.read)
    infos = client.get_paths_info(
        hub.datasets.sft, ["README.md", "data", "missing"], repo_type="dataset", expand=True
    )
    by_path = {i.path: i for i in infos}
    assert set(by_path) == {"README.md", "data"}
    assert by_path["README.md"].last_commit is not None
    refs = client.list_repo_refs(hub.models.chat)
    assert [b.name for b in refs.branches] == ["main"]
    tree = list(client.list_repo_tree(hub.models.chat, expand=True))
    weights = next(e for e in tree if e.path == "model.safetensors")
    assert weights.security is not None and weights.security.safe
    assert weights.last_commit is not None and weights.last_commit.title == "initial commit"


def test_resolve_headers_ranges_and_disabled_repos(hub_env: HubEnv) -> None:
    import httpx

    hub = hub_env.hub
    files = hub.files(hub.models.chat)
    base = f"{hub.endpoint}/{hub.models.chat}/resolve/main"
    with httpx.Client() as http:
        head = http.head(f"{base}/model.safetensors")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(files["model.safetensors"]))
        sha256 = hashlib.sha256(files["model.safetensors"]).hexdigest()
        assert head.headers["etag"] == head.headers["x-linked-etag"] == f'"{sha256}"'
        assert len(head.headers["x-repo-commit"]) == 40
        assert not any(k.lower().startswith("x-xet") for k in head.headers)
        small = http.head(f"{base}/config.json")
        assert small.headers["etag"] == f'"{git_blob_sha1(files["config.json"])}"'
        assert "x-linked-etag" not in small.headers
        part = http.get(f"{base}/config.json", headers={"Range": "bytes=2-5"})
        assert part.status_code == 206 and part.content == files["config.json"][2:6]
        assert part.headers["content-range"] == f"bytes 2-5/{len(files['config.json'])}"
        assert http.get(f"{base}/config.json", headers={"Range": "bytes=9999-"}).status_code == 416
    hub.add_repo(f"{hub.org}/gone", files={"a.txt": "a"}, disabled=True)
    with pytest.raises(DisabledRepoError):
        api(hub_env).model_info(f"{hub.org}/gone")


def test_pull_request_commit_with_read_token(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    info = api(hub_env, hub.tokens.read).upload_file(
        path_or_fileobj=b"fix", path_in_repo="fix.txt", repo_id=hub.models.chat, create_pr=True
    )
    assert info.pr_num == 1
    assert "fix.txt" not in hub.files(hub.models.chat)
    assert hub.files(hub.models.chat, revision="refs/pr/1")["fix.txt"] == b"fix"
    assert hub.commits()[-1].revision == "refs/pr/1"


# -- transformers and datasets through HF_ENDPOINT ---------------------------------------------


def test_transformers_loads_model_and_tokenizer(hub_env: HubEnv) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub = hub_env.hub
    model = AutoModelForCausalLM.from_pretrained(hub.models.chat)
    info = api(hub_env).model_info(hub.models.chat)
    assert info.safetensors is not None
    assert model.num_parameters() == info.safetensors.total
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    for repo in (hub.models.chat, hub.models.chat_jinja):
        tok = AutoTokenizer.from_pretrained(repo)
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert text == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
        assert tok.eos_token == "<|im_end|>"
    assert AutoTokenizer.from_pretrained(hub.models.no_template).chat_template is None
    gated = AutoTokenizer.from_pretrained(hub.models.gated_granted, token=hub.tokens.read)
    assert gated.chat_template is not None
    with pytest.raises(OSError, match="gated"):
        AutoTokenizer.from_pretrained(hub.models.gated_denied, token=hub.tokens.read)
    assert not any(r.status >= 500 for r in hub.requests())


def test_datasets_loads_both_tiny_sets(hub_env: HubEnv) -> None:
    from datasets import load_dataset

    hub = hub_env.hub
    sft = load_dataset(hub.datasets.sft, split="train")
    assert sft.column_names == ["messages"] and len(sft) == 32
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    grpo = load_dataset(hub.datasets.grpo, split="train")
    assert sorted(grpo.column_names) == ["problem", "solution"] and len(grpo) == 32
    assert any(s.startswith("\\boxed{") for s in grpo["solution"])


# -- the emulator itself -----------------------------------------------------------------------


def _get(url: str, method: str = "GET", body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_control_endpoints(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    assert _get(f"{hub.control}/health") == {"ok": True}
    assert _get(f"{hub.control}/world")["models"]["chat"] == hub.models.chat
    _get(f"{hub.control}/repos", "POST", {"repo_id": f"{hub.org}/ctl", "files": {"a.txt": "YQ=="}})
    _get(f"{hub.control}/upload", "POST", {"repo_id": f"{hub.org}/ctl", "files": {"b": "Yg=="}})
    [entry] = _get(f"{hub.control}/commits?repo_id={hub.org}/ctl")
    assert entry["paths"] == ["b"] and entry["via"] == "python"
    _get(f"{hub.control}/faults", "POST", {"path_prefix": "/api/whoami-v2", "status": 429})
    with pytest.raises(HfHubHTTPError) as err:
        api(hub_env).whoami()
    assert err.value.response.status_code == 429
    assert api(hub_env).whoami()["name"] == hub.user
    assert any(r["path"] == "/api/whoami-v2" for r in _get(f"{hub.control}/requests"))
    _get(f"{hub.control}/grant", "POST", {"repo_id": hub.models.gated_denied, "user": hub.user})
    api(hub_env, hub.tokens.read).auth_check(hub.models.gated_denied)
    _get(f"{hub.control}/reset", "POST", {})
    assert hub.commits() == []
    with pytest.raises(GatedRepoError):
        api(hub_env, hub.tokens.read).auth_check(hub.models.gated_denied)


def test_cli_prints_ready_and_world_then_stops_on_sigterm(fake_hub: FakeHub) -> None:
    fake_hub.artifacts  # noqa: B018 - make sure the cache is warm before timing the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.world.hub", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[0] == "READY"
        world = json.loads(proc.stdout.readline())
        assert world["endpoint"] == f"http://127.0.0.1:{ready[1]}"
        assert set(world["tokens"]) >= {"write", "read", "fine_grained_no_write"}
        assert set(world["models"]) >= {"chat", "no_template", "gated_denied", "gated_granted"}
        assert set(world["datasets"]) == {"sft", "grpo"}
        assert _get(f"{world['control']}/health") == {"ok": True}
        client = HfApi(endpoint=world["endpoint"], token=world["tokens"]["read"])
        assert client.whoami()["name"] == world["user"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_start_is_fast_with_cached_artifacts(fake_hub: FakeHub) -> None:
    start = time.perf_counter()
    with FakeHub() as hub:
        elapsed = time.perf_counter() - start
        assert HfApi(endpoint=hub.endpoint).model_info(hub.models.chat).id == hub.models.chat
    assert elapsed < 0.5, f"FakeHub start took {elapsed:.3f} s"

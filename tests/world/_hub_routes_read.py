"""Read-side routes of the fake Hub: whoami, repo info, tree, paths-info, refs, resolve.

Shapes follow the Hub's (docs/hub.md, "Reads") and what `huggingface_hub` 1.33 parses
(`ModelInfo`, `DatasetInfo`, `RepoFile`, `get_hf_file_metadata`). Xet is never advertised: no
`xetHash` in trees, no `X-Xet-*` headers, no redirects.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from tests.world._hub_model import (
    HubError,
    Snapshot,
    Token,
    file_entry,
    git_blob_sha1,
    hub_time,
    is_lfs_path,
    safetensors_parameters,
)
from tests.world._hub_state import HubState, Repo
from tests.world._hub_wire import Request, Response, json_response

__all__ = ["auth_check", "paths_info", "refs", "repo_info", "resolve", "tree", "whoami"]

_SECURITY = {
    "status": "safe",
    "avScan": {"virusFound": False, "virusNames": None},
    "pickleImportScan": None,
}


def whoami(state: HubState, req: Request) -> Response:
    """`GET /api/whoami-v2`: the account behind the token, with the token's role and scopes."""
    token = req.token
    if token is None:
        raise HubError(401, "Invalid username or password.")
    user = state.users[token.user]
    access: dict[str, Any] = {
        "displayName": token.display_name,
        "role": token.role,
        "createdAt": token.created_at,
    }
    if token.role == "fineGrained":
        read_perms = ["repo.content.read", "repo.access.read"]
        access["fineGrained"] = {
            "canReadGatedRepos": token.can_read_gated,
            "global": ["discussion.write", "post.write"],
            "scoped": [
                {
                    "entity": {
                        "_id": _entity_id(ns),
                        "type": "user" if ns == user.name else "org",
                        "name": ns,
                    },
                    "permissions": read_perms
                    + (["repo.write"] if ns in token.scoped_write else []),
                }
                for ns in sorted(state.namespaces_of(token))
            ],
        }
    return json_response({
        "type": "user", "id": user.id, "name": user.name, "fullname": user.fullname,
        "email": user.email, "emailVerified": True, "canPay": False, "billingMode": "prepaid",
        "periodEnd": None, "isPro": False, "avatarUrl": "/avatars/fake.svg",
        "orgs": [{"type": "org", "id": _entity_id(o), "name": o, "fullname": o.title(),
                  "email": None, "canPay": False, "avatarUrl": "/avatars/org.svg",
                  "periodEnd": None} for o in user.orgs],
        "auth": {"type": "access_token", "accessToken": access},
    })  # fmt: skip


def _entity_id(name: str) -> str:
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:24]


def _json_file(snap: Snapshot, path: str) -> dict[str, Any]:
    try:
        data = json.loads(snap.files[path])
    except (KeyError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _card_data(snap: Snapshot) -> dict[str, Any] | None:
    """YAML front matter of README.md, which the Hub exposes as `cardData`."""
    text = snap.files.get("README.md", b"").decode("utf-8", "replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if not match:
        return None
    import yaml  # PyYAML ships with datasets/transformers; imported lazily to keep start fast

    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else None


def _model_fields(snap: Snapshot) -> dict[str, Any]:
    """The model-only keys: config extract, tags, safetensors counts, transformersInfo."""
    cfg = _json_file(snap, "config.json")
    tok = _json_file(snap, "tokenizer_config.json")
    config: dict[str, Any] = {k: cfg[k] for k in ("architectures", "model_type") if k in cfg}
    tok_extract = {
        k: tok[k]
        for k in ("bos_token", "eos_token", "pad_token", "unk_token", "chat_template")
        if tok.get(k) is not None
    }
    if "chat_template.jinja" in snap.files:
        tok_extract["chat_template_jinja"] = snap.files["chat_template.jinja"].decode()
    if tok_extract:
        config["tokenizer_config"] = tok_extract
    fields: dict[str, Any] = {"config": config, "spaces": []}
    tags = ["transformers"] if cfg else []
    params: dict[str, int] = {}
    for path, data in sorted(snap.files.items()):
        if path.endswith(".safetensors"):
            for dtype, n in safetensors_parameters(data).items():
                params[dtype] = params.get(dtype, 0) + n
    if params:
        tags.append("safetensors")
        fields["safetensors"] = {"parameters": params, "total": sum(params.values())}
    if "model_type" in cfg:
        tags.append(cfg["model_type"])
    if any(str(a).endswith("ForCausalLM") for a in cfg.get("architectures", [])):
        tags.append("text-generation")
        fields.update(
            library_name="transformers",
            pipeline_tag="text-generation",
            transformersInfo={
                "auto_model": "AutoModelForCausalLM",
                "pipeline_tag": "text-generation",
                "processor": "AutoTokenizer",
            },
        )
    if "chat_template" in tok_extract or "chat_template_jinja" in tok_extract:
        tags.append("conversational")
    fields["tags"] = tags
    return fields


def repo_info(state: HubState, req: Request, repo: Repo, revision: str | None) -> Response:
    """`GET /api/{type}s/{repo}[/revision/{rev}]`: 200 for gated repos too (metadata is public)."""
    snap = repo.resolve(revision or "main")
    gitattributes = snap.files.get(".gitattributes")
    siblings = []
    for path, data in sorted(snap.files.items()):
        sibling: dict[str, Any] = {"rfilename": path}
        if req.flag("blobs"):
            entry = file_entry(path, data, gitattributes)
            sibling.update(size=len(data), blobId=entry["oid"])
            if "lfs" in entry:
                lfs = entry["lfs"]
                sibling["lfs"] = {
                    "sha256": lfs["oid"],
                    "size": lfs["size"],
                    "pointerSize": lfs["pointerSize"],
                }
        siblings.append(sibling)
    info: dict[str, Any] = {
        "_id": _entity_id(f"{repo.repo_type}:{repo.repo_id}"), "id": repo.repo_id,
        "author": repo.namespace, "sha": snap.oid, "lastModified": hub_time(snap.date),
        "createdAt": hub_time(repo.created_at), "private": repo.private, "gated": repo.gated,
        "disabled": repo.disabled, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
        "usedStorage": sum(len(d) for d in snap.files.values()),
    }  # fmt: skip
    if repo.repo_type == "model":
        info["modelId"] = repo.repo_id
        info.update(_model_fields(snap))
    elif repo.repo_type == "dataset":
        info.update(description="", citation="", paperswithcode_id=None)
    card = _card_data(snap)
    if card is not None:
        info["cardData"] = card
    if req.flag("securityStatus"):
        info["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
    expand = req.query.get("expand")
    if expand:
        extras = {"xetEnabled": False, "trendingScore": 0, "downloadsAllTime": 0}
        info = {k: v for k, v in {**extras, **info}.items() if k in {"_id", "id", *expand}}
    return json_response(info)


def _dir_oid(snap: Snapshot, path: str) -> str:
    listing = "".join(
        f"{p}\0{git_blob_sha1(d)}\n"
        for p, d in sorted(snap.files.items())
        if p.startswith(path + "/")
    )
    return hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()


def _last_commit(repo: Repo, snap: Snapshot, path: str) -> dict[str, str]:
    """Newest commit at or before `snap` that changed `path` (file or folder prefix)."""

    def view(s: Snapshot) -> list[tuple[str, bytes]]:
        return [(p, d) for p, d in s.files.items() if p == path or p.startswith(path + "/")]

    current = snap
    while current.parent is not None:
        parent = repo.snapshots[current.parent]
        if sorted(view(parent)) != sorted(view(current)):
            break
        current = parent
    return {"id": current.oid, "title": current.summary, "date": hub_time(current.date)}


def _entries(repo: Repo, snap: Snapshot, paths: list[str], expand: bool) -> list[dict[str, Any]]:
    gitattributes = snap.files.get(".gitattributes")
    out = []
    for path in paths:
        if path in snap.files:
            entry = file_entry(path, snap.files[path], gitattributes)
            if expand:
                entry["securityFileStatus"] = _SECURITY
        else:
            entry = {"type": "directory", "oid": _dir_oid(snap, path), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = _last_commit(repo, snap, path)
        out.append(entry)
    return out


def tree(state: HubState, req: Request, repo: Repo, revision: str, base: str) -> Response:
    """`GET /api/{type}s/{repo}/tree/{rev}[/{path}]` with `recursive`, `expand` and paging.

    Pages are `tree_page_size` entries long (50 with `expand`, like the Hub) and chained with
    a `Link: <...>; rel="next"` header carrying a `cursor` query parameter.
    """
    snap = repo.resolve(revision)
    base = base.strip("/")
    prefix = f"{base}/" if base else ""
    under = sorted(p for p in snap.files if p.startswith(prefix))
    if base and not under:
        raise HubError(
            404,
            f'{base} does not exist on "{revision}"',
            code="EntryNotFound",
            headers={"X-Repo-Commit": snap.oid},
        )
    recursive = req.flag("recursive")
    names: set[str] = set()
    for path in under:
        parts = path[len(prefix) :].split("/")
        if recursive:
            names.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
        else:
            names.add(prefix + parts[0])
    ordered = sorted(names, key=lambda p: (p in snap.files, p))  # folders first, as the Hub
    expand = req.flag("expand")
    size = min(50, state.tree_page_size) if expand else state.tree_page_size
    start = int(req.arg("cursor") or 0)
    page = ordered[start : start + size]
    headers = {}
    if start + size < len(ordered):
        params = [(k, v) for k, vs in req.query.items() if k != "cursor" for v in vs]
        query = urlencode([*params, ("cursor", str(start + size))])
        url = f"{state.endpoint}{req.raw_path}?{query}"
        headers["Link"] = f'<{url}>; rel="next"'
    return json_response(_entries(repo, snap, page, expand), headers=headers)


def paths_info(state: HubState, req: Request, repo: Repo, revision: str) -> Response:
    """`POST /api/{type}s/{repo}/paths-info/{rev}`: entries for the paths that exist."""
    snap = repo.resolve(revision)
    form = req.form()
    expand = (form.get("expand") or ["false"])[0].lower() in ("1", "true")
    found = []
    for raw in form.get("paths", []):
        path = raw.strip("/")
        if path in snap.files or any(p.startswith(path + "/") for p in snap.files):
            found.append(path)
    return json_response(_entries(repo, snap, found, expand))


def refs(state: HubState, req: Request, repo: Repo) -> Response:
    """`GET /api/{type}s/{repo}/refs`: branches (PR refs only with `include_prs`)."""
    with state.lock:
        all_refs = sorted(repo.branches.items())
    branches = [
        {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
        for name, oid in all_refs
        if not name.startswith("refs/")
    ]
    data: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
    if req.flag("include_prs"):
        data["pullRequests"] = [
            {"name": name, "ref": name, "targetCommit": oid}
            for name, oid in all_refs
            if name.startswith("refs/pr/")
        ]
    return json_response(data)


def commits(state: HubState, req: Request, repo: Repo, revision: str) -> Response:
    """`GET /api/{type}s/{repo}/commits/{rev}`: the history, newest first (one page)."""
    with state.lock:
        snap: Snapshot | None = repo.resolve(revision)
        authors = {c.oid: c.user for c in state.ledger if c.repo_id == repo.repo_id}
        history = []
        while snap is not None:
            history.append(
                {
                    "id": snap.oid,
                    "title": snap.summary,
                    "message": "",
                    "authors": [{"user": authors.get(snap.oid) or repo.namespace}],
                    "date": hub_time(snap.date),
                }
            )
            snap = repo.snapshots.get(snap.parent) if snap.parent else None
    return json_response(history)


def auth_check(state: HubState, req: Request, repo: Repo, write: bool) -> Response:
    """`GET /api/{type}s/{repo}/auth-check[/write]`: the gated/write answers without a file."""
    state.check_file_access(req.token, repo)
    if write:
        state.check_write(req.token, repo)
    return json_response({})


def resolve(
    state: HubState, req: Request, repo: Repo, revision: str, path: str, *, cached: bool = False
) -> Response:
    """`HEAD`/`GET /{[datasets/]}{repo}/resolve/{rev}/{path}`: bytes plus hub metadata headers.

    Answers directly: `X-Repo-Commit`, `ETag` (git sha1, or the content sha256 for LFS files,
    mirrored in `X-Linked-Etag`/`X-Linked-Size`), exact `Content-Length`, and `Range` support
    (206 / 416) for HfFileSystem's partial reads. With `state.resolve_redirects`, a non-LFS
    file is first redirected as the real Hub does: a 307 with a relative `Location` on
    `/api/resolve-cache/...` (`cached`: this is that route), carrying `X-Repo-Commit` and
    `X-Linked-Etag`.
    """
    token: Token | None = req.token
    state.check_file_access(token, repo)
    snap = repo.resolve(revision)
    data = snap.files.get(path)
    if data is None:
        raise HubError(
            404,
            f'{path} does not exist on "{revision}"',
            code="EntryNotFound",
            headers={"X-Repo-Commit": snap.oid},
        )
    lfs = is_lfs_path(path, len(data), snap.files.get(".gitattributes"))
    if state.resolve_redirects and not cached and not lfs:
        prefix = {"model": "models", "dataset": "datasets", "space": "spaces"}[repo.repo_type]
        location = f"/api/resolve-cache/{prefix}/{repo.repo_id}/{snap.oid}/{quote(path)}"
        return Response(
            307,
            {
                "Location": f"{location}?etag=%22{git_blob_sha1(data)}%22",
                "X-Repo-Commit": snap.oid,
                "X-Linked-Etag": f'"{git_blob_sha1(data)}"',
            },
        )
    headers = {
        "X-Repo-Commit": snap.oid,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
    }
    if lfs:
        etag = hashlib.sha256(data).hexdigest()
        headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
    else:
        etag = git_blob_sha1(data)
    headers["ETag"] = f'"{etag}"'
    rng = req.headers.get("range")
    if rng and req.method == "GET":
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        size = len(data)
        if match and (match.group(1) or match.group(2)):
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            else:
                start, end = max(size - int(last), 0), size - 1
            if start >= size or start > end:
                raise HubError(
                    416,
                    "Requested Range Not Satisfiable",
                    headers={"Content-Range": f"bytes */{size}"},
                )
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Response(206, headers, data[start : end + 1])
    return Response(200, headers, data)

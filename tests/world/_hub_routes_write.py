"""Write-side routes of the fake Hub: create/delete repo, validate-yaml, preupload, commit, LFS.

Preupload answers `regular` for every file (the client accepts it) so content travels base64 inside
the NDJSON commit and neither LFS nor xet is involved. The LFS batch path still exists for a
client that insists (or when a test sets `HubState.lfs_uploads`); xet token routes refuse
with a non-retryable 404 so a misconfigured client fails fast instead of backing off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from tests.world._hub_model import HubError, RepoType, git_blob_sha1, is_lfs_path
from tests.world._hub_state import HubState, Repo
from tests.world._hub_wire import (
    Request,
    Response,
    as_repo_type,
    json_response,
    repo_url,
)

__all__ = [
    "commit",
    "create_repo",
    "delete_repo",
    "lfs_batch",
    "lfs_upload",
    "lfs_verify",
    "preupload",
    "validate_yaml",
]


def _body_repo(state: HubState, req: Request) -> tuple[RepoType, str]:
    body = req.json()
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HubError(400, "Missing repo name")
    namespace = body.get("organization")
    if namespace is None:
        if req.token is None:
            raise HubError(401, "Invalid username or password.")
        namespace = req.token.user
    return as_repo_type(body.get("type")), f"{namespace}/{name}"


def create_repo(state: HubState, req: Request) -> Response:
    """`POST /api/repos/create`: 403 without write on the namespace, 409 (+`url`) if it exists."""
    repo_type, repo_id = _body_repo(state, req)
    body = req.json()
    namespace = repo_id.split("/", 1)[0]
    if req.token is None:
        raise HubError(401, "Invalid username or password.")
    if not state.can_write_namespace(req.token, namespace):
        raise HubError(
            403,
            f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"',
        )
    url = repo_url(state.endpoint, repo_type, repo_id)
    if state.find_repo(repo_type, repo_id) is not None:
        raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
    private = body.get("visibility") == "private" or body.get("private") is True
    repo = state.create_repo(repo_type, repo_id, private=private)
    return json_response({"url": url, "name": repo_id, "id": repo.head.oid[:24]})


def delete_repo(state: HubState, req: Request) -> Response:
    """`DELETE /api/repos/delete`: needs write on the namespace."""
    repo_type, repo_id = _body_repo(state, req)
    repo = state.visible_repo(req.token, repo_type, repo_id)
    state.check_write(req.token, repo)
    state.delete_repo(repo_type, repo_id)
    return json_response({})


def validate_yaml(state: HubState, req: Request) -> Response:
    """`POST /api/validate-yaml`: always valid, always JSON (the client reads JSON first)."""
    return json_response({"errors": [], "warnings": []})


def _write_revision(state: HubState, repo: Repo, req: Request, revision: str) -> str:
    """Branch a write goes to; `create_pr=1` opens `refs/pr/N` from `revision` first."""
    with state.lock:
        base = repo.resolve(revision)
        if not req.flag("create_pr"):
            if revision not in repo.branches:
                raise HubError(400, f"Invalid rev id: {revision} is not a branch")
            return revision
        number = 1 + sum(1 for b in repo.branches if b.startswith("refs/pr/"))
        ref = f"refs/pr/{number}"
        repo.branches[ref] = base.oid
        return ref


def preupload(state: HubState, req: Request, repo: Repo, revision: str) -> Response:
    """`POST /api/{type}s/{repo}/preupload/{rev}`: upload mode per file plus its current oid."""
    if not req.flag("create_pr"):
        state.check_write(req.token, repo)
    snap = repo.resolve(revision)
    gitattributes = snap.files.get(".gitattributes")
    files = []
    for item in req.json().get("files", []):
        path, size = item["path"], int(item.get("size", 0))
        lfs = state.lfs_uploads and size > 0 and is_lfs_path(path, size, gitattributes)
        answer: dict[str, Any] = {
            "path": path,
            "uploadMode": "lfs" if lfs else "regular",
            "shouldIgnore": False,
        }
        current = snap.files.get(path)
        if current is not None:
            # The client compares this with its own id for the mode we chose: sha256 of the
            # content for lfs, git blob sha1 for regular (docs/hub.md, "Uploads").
            answer["oid"] = hashlib.sha256(current).hexdigest() if lfs else git_blob_sha1(current)
        files.append(answer)
    return json_response({"files": files, "commitOid": snap.oid})


def _lfs_content(state: HubState, repo: Repo, oid: str) -> bytes:
    with state.lock:
        data = state.lfs_blobs.get(oid)
        if data is None:  # a copy of an LFS file already in the repo
            data = next(
                (
                    d
                    for s in repo.snapshots.values()
                    for d in s.files.values()
                    if hashlib.sha256(d).hexdigest() == oid
                ),
                None,
            )
    if data is None:
        raise HubError(422, f"LFS object {oid} was not uploaded")
    return data


def commit(state: HubState, req: Request, repo: Repo, revision: str) -> Response:
    """`POST /api/{type}s/{repo}/commit/{rev}`: NDJSON header + file/lfsFile/deleted* lines."""
    if not req.flag("create_pr"):
        state.check_write(req.token, repo)
    header: dict[str, Any] = {}
    additions: dict[str, bytes] = {}
    deletions: list[str] = []
    for line in req.body.decode("utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item.get("key"), item.get("value", {})
        if key == "header":
            header = value
        elif key == "file":
            try:
                additions[value["path"]] = base64.b64decode(value["content"], validate=True)
            except (KeyError, binascii.Error) as exc:
                raise HubError(400, f"Invalid file entry: {exc}") from exc
        elif key == "lfsFile":
            additions[value["path"]] = _lfs_content(state, repo, value["oid"])
        elif key == "deletedFile":
            deletions.append(value["path"])
        elif key == "deletedFolder":
            deletions.append(value["path"].rstrip("/") + "/")
        else:
            raise HubError(400, f"Unknown commit operation {key!r}")
    branch = _write_revision(state, repo, req, revision)
    summary = str(header.get("summary") or "Update")
    record = state.commit(
        repo,
        branch,
        additions=additions,
        deletions=deletions,
        summary=summary,
        token=req.token,
        via="http",
        parent_commit=header.get("parentCommit"),
    )
    base = repo_url(state.endpoint, repo.repo_type, repo.repo_id)
    data = {
        "success": True,
        "commitOid": record.oid,
        "commitUrl": f"{base}/commit/{record.oid}",
        "hookOutput": "",
    }
    if branch.startswith("refs/pr/"):
        data["pullRequestUrl"] = f"{base}/discussions/{branch.rsplit('/', 1)[-1]}"
    return json_response(data)


def lfs_batch(state: HubState, req: Request, repo: Repo) -> Response:
    """`POST /{repo}.git/info/lfs/objects/batch`: basic transfer to `/_lfs/upload/<oid>`."""
    state.check_write(req.token, repo)
    objects = []
    for obj in req.json().get("objects", []):
        oid, size = str(obj["oid"]), int(obj["size"])
        entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        with state.lock:
            known = oid in state.lfs_blobs
        if not known:
            entry["actions"] = {
                "upload": {"href": f"{state.endpoint}/_lfs/upload/{oid}"},
                "verify": {"href": f"{state.endpoint}/_lfs/verify"},
            }
        objects.append(entry)
    return json_response(
        {"transfer": "basic", "objects": objects},
        headers={"Content-Type": "application/vnd.git-lfs+json"},
    )


def lfs_upload(state: HubState, req: Request, oid: str) -> Response:
    """`PUT /_lfs/upload/<oid>`: store the bytes if their sha256 matches (no auth, like S3)."""
    if hashlib.sha256(req.body).hexdigest() != oid:
        raise HubError(400, "sha256 of the uploaded content does not match the oid")
    with state.lock:
        state.lfs_blobs[oid] = req.body
    return Response(200)


def lfs_verify(state: HubState, req: Request) -> Response:
    """`POST /_lfs/verify`: 200 once the object is stored."""
    oid = str(req.json().get("oid"))
    with state.lock:
        known = oid in state.lfs_blobs
    if not known:
        raise HubError(404, f"LFS object {oid} not found")
    return json_response({})

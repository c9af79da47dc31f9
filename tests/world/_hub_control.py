"""`/_control/...` routes: the fake Hub's back door for tests and for people poking at it by hand.

No authentication: these routes exist only on the emulator. They expose the ledger of commits,
the request log, fault injection, and ways to add repos, files and gated-access grants without
going through the Hub protocol.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.world._hub_model import HubError, git_blob_sha1
from tests.world._hub_state import Fault, FaultAction, HubState
from tests.world._hub_wire import Request, Response, as_repo_type, json_response
from tests.world._random_faults import RandomFaults

__all__ = ["CONTROL_ROUTES", "ControlHooks", "handle_control"]

CONTROL_ROUTES = {
    "GET /_control/health": "liveness: {ok: true}",
    "GET /_control/world": "the world descriptor (endpoint, tokens, user, models, datasets)",
    "GET /_control/commits?repo_id=&repo_type=": "the commit ledger, oldest first",
    "GET /_control/requests": "requests answered so far (method, path, query, status, user)",
    "DELETE /_control/requests": "clear the request log",
    "GET /_control/files?repo_id=&repo_type=&revision=": "path -> {size, blob_id} at a revision",
    "POST /_control/repos": "create {repo_id, repo_type?, private?, gated?, files?: {path: b64}}",
    "POST /_control/upload": "commit {repo_id, repo_type?, files: {path: b64}, delete?, summary?}",
    "POST /_control/grant": "allow {user} to download gated {repo_id} (repo_type?)",
    "POST /_control/faults": "fail next {times} {method} {path_prefix}: {status, message, code}"
    " or {action: delay, delay_s} (answer late) or {action: drop} (close, no answer)",
    "DELETE /_control/faults": "drop pending faults and turn random faults off",
    "POST /_control/random_faults": "seeded random faults on every request from now on:"
    " {rate, seed, kinds?: [429, 500, drop], retry_after?, lost_answers?, agent?}",
    "GET /_control/injected_faults": "random faults handed out so far, per kind",
    "POST /_control/reset": "back to the seeded world (repos, ledger, log, faults)",
}


@dataclass(frozen=True)
class ControlHooks:
    """What only the `FakeHub` facade knows: the world descriptor and how to re-seed."""

    world: Callable[[], dict[str, Any]]
    reset: Callable[[], None]


def _files(body: dict[str, Any]) -> dict[str, bytes]:
    return {path: base64.b64decode(data) for path, data in (body.get("files") or {}).items()}


def handle_control(state: HubState, hooks: ControlHooks, req: Request) -> Response:
    """Dispatch one `/_control/<name>` request."""
    name = "/".join(req.segments[1:])
    route = f"{req.method} {name}"
    if route == "GET health":
        return json_response({"ok": True})
    if route == "GET world":
        return json_response(hooks.world())
    if route == "GET commits":
        repo_id, repo_type = req.arg("repo_id"), req.arg("repo_type")
        with state.lock:
            ledger = list(state.ledger)
        return json_response([
            c.to_json() for c in ledger
            if (repo_id is None or c.repo_id == repo_id)
            and (repo_type is None or c.repo_type == repo_type)
        ])  # fmt: skip
    if route == "GET requests":
        with state.lock:
            return json_response([r.to_json() for r in state.request_log])
    if route == "DELETE requests":
        with state.lock:
            state.request_log.clear()
        return json_response({})
    if route == "GET files":
        repo = state.find_repo(as_repo_type(req.arg("repo_type")), req.arg("repo_id") or "")
        if repo is None:
            raise HubError(404, "Repository not found", code="RepoNotFound")
        snap = repo.resolve(req.arg("revision") or "main")
        return json_response(
            {
                p: {"size": len(d), "blob_id": git_blob_sha1(d)}
                for p, d in sorted(snap.files.items())
            }
        )
    if route == "GET injected_faults":
        faults = state.random_faults
        return json_response(faults.injected() if faults else {"total": 0})
    if route == "POST random_faults":
        with state.lock:
            state.random_faults = RandomFaults(**req.json())
        return json_response({})
    if req.method == "POST" and name in ("repos", "upload", "grant", "faults", "reset"):
        return _post(state, hooks, name, req.json())
    if route == "DELETE faults":
        with state.lock:
            state.faults.clear()
            state.random_faults = None
        return json_response({})
    return json_response({"error": f"unknown control route {route}", "routes": CONTROL_ROUTES}, 404)


def _fault_action(value: object) -> FaultAction:
    if value == "delay" or value == "drop" or value == "status":
        return value
    raise HubError(400, f"unknown fault action {value!r} (status, delay or drop)")


def _post(state: HubState, hooks: ControlHooks, name: str, body: dict[str, Any]) -> Response:
    if name == "reset":
        hooks.reset()
        return json_response({})
    if name == "faults":
        fault = Fault(
            method=str(body.get("method", "*")).upper(),
            path_prefix=str(body.get("path_prefix", "/")),
            status=int(body["status"]),
            message=str(body.get("message", "Injected failure")),
            code=body.get("code"),
            times=int(body.get("times", 1)),
            action=_fault_action(body.get("action", "status")),
            delay_s=float(body.get("delay_s", 0.0)),
        )
        with state.lock:
            state.faults.append(fault)
        return json_response({})
    repo_type = as_repo_type(body.get("repo_type"))
    repo_id = str(body["repo_id"])
    if name == "repos":
        gated = body.get("gated", False)
        repo = state.create_repo(
            repo_type,
            repo_id,
            private=bool(body.get("private")),
            gated=gated if gated in ("auto", "manual") else False,
            files=_files(body),
        )
        return json_response({"repo_id": repo.repo_id, "sha": repo.head.oid})
    repo = state.find_repo(repo_type, repo_id)
    if repo is None:
        raise HubError(404, "Repository not found", code="RepoNotFound")
    if name == "grant":
        state.grant(repo_type, repo_id, str(body["user"]))
        return json_response({})
    record = state.commit(
        repo,
        str(body.get("revision", "main")),
        additions=_files(body),
        deletions=body.get("delete") or (),
        summary=str(body.get("summary", "Upload via /_control")),
        token=None,
        via="python",
    )
    return json_response(record.to_json())

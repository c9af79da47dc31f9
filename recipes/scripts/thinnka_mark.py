"""Record on the Hub that this run's final model is pushed: ``thinnka-run.json``.

Run by ``train.sh`` in the run folder right after the last job of the chain (the training,
or the LoRA merge with ``--merge-model``) exited 0, i.e. after the trainer's (or
merge.py's) final push. Every commit before it may be a checkpoint: with ``push_to_hub``
transformers pushes at every save ("Training in progress, step N"), and creating the
repo makes a commit of its own. So thinnka's push check looks for this file, naming this
run id, and for nothing else: a run stopped half-way (its deadline, a lost pod) never
writes it, and a run pushing to the same repo writes its own id.

Values come from ``run.env`` (via ``job.sh``): ``THINNKA_RUN_ID``, ``THINNKA_PUSH_REPO``
(the repo the final model went to), ``THINNKA_OUTPUT_DIR`` (for the final step, when the
trainer left a ``trainer_state.json``), ``THINNKA_JOB``. The token comes from
``$HF_HOME/token``, as huggingface_hub reads it; it is never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

MARKER = "thinnka-run.json"  # thinnka/handlers/push.py's RUN_MARKER
# transformers' folder of the last checkpoint (hub_strategy="checkpoint"): deleted in the
# marker's commit, so the repo's head holds the final model only (thinnka.planning.checkpoints).
CHECKPOINT_FOLDER = "last-checkpoint"
_ATTEMPTS = 4  # with 2, 4, 8 s between: a Hub hiccup, not an outage


def final_step(output_dir: str | None) -> tuple[int | None, int | None]:
    """(global step, max steps) from the newest ``trainer_state.json`` the trainer left."""
    if not output_dir:
        return None, None
    root = Path(output_dir)
    states = [root / "trainer_state.json"]
    checkpoints = [p for p in root.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    states += [p / "trainer_state.json" for p in checkpoints]
    best: tuple[int | None, int | None] = (None, None)
    for path in states:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        step, most = state.get("global_step"), state.get("max_steps")
        if isinstance(step, int) and (best[0] is None or step > best[0]):
            best = (step, most if isinstance(most, int) else None)
    return best


def marker(run_id: str, head: str | None, job: str | None, output_dir: str | None) -> bytes:
    step, max_steps = final_step(output_dir)
    body: dict[str, Any] = {
        "run_id": run_id,
        "job": job,
        # The commit this marker vouches for: the final push it follows.
        "model_commit": head,
        "step": step,
        "max_steps": max_steps,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # The eval scores (thinnka_eval.py's, in this run folder) travel with the marker: a run
    # whose pod ended before thinnka read them (detached, followed by `recover`) keeps them.
    scores = Path(__file__).with_name("scores.json")
    with contextlib.suppress(OSError, ValueError):  # none, or half-written: no scores
        body["scores"] = json.loads(scores.read_text(encoding="utf-8"))
    return (json.dumps(body, indent=1) + "\n").encode()


def _drop_checkpoint(api: Any, checkpoints: str, repo: str) -> None:
    """With --merge-model the checkpoints went to the adapter's repo: its last-checkpoint/
    goes too (best effort: the final model is recorded already)."""
    if checkpoints == repo:
        return  # deleted in the marker's own commit
    from huggingface_hub import CommitOperationDelete

    try:
        if any(f.startswith(f"{CHECKPOINT_FOLDER}/") for f in api.list_repo_files(checkpoints)):
            api.create_commit(
                checkpoints,
                operations=[CommitOperationDelete(f"{CHECKPOINT_FOLDER}/", is_folder=True)],
                commit_message="thinnka: the final model is pushed; last checkpoint removed",
            )
    except Exception as exc:  # never fails the recorded push
        print(f"thinnka: {CHECKPOINT_FOLDER}/ of {checkpoints} not removed: "
              f"{type(exc).__name__}", file=sys.stderr, flush=True)  # fmt: skip


def main() -> int:
    run_id = os.environ.get("THINNKA_RUN_ID", "")
    repo = os.environ.get("THINNKA_PUSH_REPO", "")
    if not run_id or not repo:
        print("thinnka: no THINNKA_RUN_ID/THINNKA_PUSH_REPO; the final push is not recorded",
              file=sys.stderr, flush=True)  # fmt: skip
        return 2
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi()
    delay = 2.0
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            head = api.repo_info(repo).sha
            job, output_dir = os.environ.get("THINNKA_JOB"), os.environ.get("THINNKA_OUTPUT_DIR")
            operations: list[Any] = [
                CommitOperationAdd(MARKER, marker(run_id, head, job, output_dir)),
            ]
            if any(f.startswith(f"{CHECKPOINT_FOLDER}/") for f in api.list_repo_files(repo)):
                operations.append(CommitOperationDelete(f"{CHECKPOINT_FOLDER}/", is_folder=True))
            api.create_commit(
                repo,
                operations=operations,
                commit_message=f"thinnka: final push of run {run_id}",
            )
        except Exception as exc:  # any Hub or network error: retried a bounded number of times
            # The class and first line only: huggingface_hub's messages carry no token, but
            # a long one may carry a server's page.
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            print(f"thinnka: recording the final push on {repo} failed (attempt {attempt}): "
                  f"{type(exc).__name__}: {detail}", file=sys.stderr, flush=True)  # fmt: skip
            if attempt == _ATTEMPTS:
                return 1
            time.sleep(delay)
            delay *= 2
            continue
        print(f"thinnka: final push of run {run_id} recorded on {repo} ({MARKER})", flush=True)
        _drop_checkpoint(api, os.environ.get("THINNKA_CHECKPOINT_REPO") or repo, repo)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())

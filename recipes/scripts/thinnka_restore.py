"""Put the checkpoint a restarted training resumes from into the output folder.

Run by ``train.sh`` before the training of a run whose earlier pod was lost (thinnka
restarts it on a new pod). Values come from ``run.env``: ``THINNKA_RESTORE_STEP`` (the
checkpoint's step), ``THINNKA_RESTORE_COMMIT`` (the Hub commit holding it in
``last-checkpoint/``; empty when it lies on the network volume already),
``THINNKA_CHECKPOINT_REPO`` (the repo the trainer pushes checkpoints to) and
``THINNKA_OUTPUT_DIR``. The trainer then resumes from the newest
``checkpoint-N`` there (``get_last_checkpoint``), as after any interruption.

Exit 0 when the checkpoint is in place (or none was asked for), 1 when it could not be
fetched: the training must not silently start over. The token is read by huggingface_hub
from ``$HF_HOME/token``; it is never printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

FOLDER = "last-checkpoint"  # transformers' folder for hub_strategy="checkpoint"
_ATTEMPTS = 4  # with 2, 4, 8 s between: a Hub hiccup, not an outage


def local_checkpoints(output_dir: Path) -> list[int]:
    """The steps of the ``checkpoint-N`` folders already in ``output_dir``."""
    if not output_dir.is_dir():
        return []
    found = (re.fullmatch(r"checkpoint-(\d+)", p.name) for p in output_dir.iterdir())
    return sorted(int(m[1]) for m in found if m)


def fetch(repo: str, commit: str, output_dir: Path) -> int:
    """Download ``last-checkpoint/`` at ``commit`` into ``output_dir/checkpoint-<step>``."""
    from huggingface_hub import snapshot_download

    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".restore-") as tmp:
        snapshot_download(repo, revision=commit, allow_patterns=[f"{FOLDER}/*"], local_dir=tmp)
        source = Path(tmp) / FOLDER
        state = json.loads((source / "trainer_state.json").read_text(encoding="utf-8"))
        step = int(state["global_step"])
        target = output_dir / f"checkpoint-{step}"
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(source), target)
    return step


def main() -> int:
    wanted = os.environ.get("THINNKA_RESTORE_STEP", "")
    if not wanted:
        return 0
    output_dir = Path(os.environ.get("THINNKA_OUTPUT_DIR", "output"))
    commit = os.environ.get("THINNKA_RESTORE_COMMIT", "")
    have = local_checkpoints(output_dir)
    if have and max(have) >= int(wanted):
        print(f"thinnka: resuming from checkpoint-{max(have)} in {output_dir}", flush=True)
        return 0
    if not commit:
        print(f"thinnka: checkpoint-{wanted} is not in {output_dir}; the training starts from "
              f"{'checkpoint-' + str(max(have)) if have else 'scratch'}", flush=True)  # fmt: skip
        return 0
    repo = os.environ.get("THINNKA_CHECKPOINT_REPO") or os.environ.get("THINNKA_PUSH_REPO", "")
    delay = 2.0
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            step = fetch(repo, commit, output_dir)
        except Exception as exc:  # any Hub or network error: retried a bounded number of times
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            print(f"thinnka: fetching the checkpoint of {repo} at {commit[:12]} failed "
                  f"(attempt {attempt}): {type(exc).__name__}: {detail}",
                  file=sys.stderr, flush=True)  # fmt: skip
            if attempt == _ATTEMPTS:
                return 1
            time.sleep(delay)
            delay *= 2
            continue
        print(f"thinnka: restored checkpoint-{step} from {repo} ({commit[:12]}); "
              f"resuming from checkpoint-{step}", flush=True)  # fmt: skip
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())

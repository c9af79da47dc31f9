"""Push the trained model in the output folder to the Hub when the trainer's own push failed.

transformers' final ``push_to_hub`` is one ``create_commit``, which huggingface_hub does
not retry on a 5xx: one Hub hiccup at the end of a training makes the trainer exit 1
with the model saved (``save_model`` comes before the push) and only the push missing.
``train.sh`` runs this script then. It pushes the output folder itself, retrying Hub
errors a bounded number of times with backoff (5xx, 429, dropped connections; a refused
token or a missing repo never), and exits

* 0 when the model is pushed (``train.sh`` then records the final push, ``thinnka_mark.py``);
* 3 when the output folder holds no model written by this job: the training itself failed,
  and its exit status stands;
* 75 when the push still fails: it writes ``push.held`` in the run folder (what failed and
  the command that pushes by hand), and the pod's watchdog keeps the pod, with the weights
  on it, for the run's push hold instead of terminating it at once.

Values come from ``run.env`` (via ``job.sh``; the command in ``push.held`` sources it too,
so it works from a plain SSH session): ``THINNKA_PUSH_REPO``, ``THINNKA_OUTPUT_DIR``,
``THINNKA_PUSH_PAUSE_S`` (the first pause between attempts). ``THINNKA_JOB_STAMP`` names a
file touched when the job started: weights older than it are not this job's. The token
comes from ``$HF_HOME/token``, as huggingface_hub reads it; it is never printed.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

PUSHED, NOTHING, HELD = 0, 3, 75  # thinnka/pod/jobs.py's PUSH_HELD_EXIT is HELD
ATTEMPTS = 5
HELD_FILE = "push.held"
# What transformers' save_model leaves in output_dir (a LoRA run saves only the adapter).
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
           "pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")  # fmt: skip


def saved_model(output_dir: Path, since: float | None) -> bool:
    """True when the output folder's root holds weights written after ``since``."""
    for name in WEIGHTS:
        path = output_dir / name
        if path.is_file() and (since is None or path.stat().st_mtime >= since):
            return True
    return False


def retryable(exc: Exception) -> bool:
    """5xx, 429 and network errors; never 4xx (a refused token, a missing repo)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    # No answer: httpx's ConnectError/ReadTimeout/RemoteProtocolError (a dropped connection),
    # requests' ConnectionError/Timeout under huggingface_hub 0.x, or an OSError.
    name = type(exc).__name__.lower()
    return isinstance(exc, OSError) or any(w in name for w in ("connect", "timeout", "protocol"))


def first_line(exc: Exception) -> str:
    # The class and first line only: huggingface_hub's messages carry no token, but a long
    # one may carry a server's page.
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def retried(what: str, call: Callable[[], object], pause: float) -> str | None:
    """Run ``call`` until it succeeds, at most ``ATTEMPTS`` times, pausing ``pause`` seconds
    (doubling) after a retryable failure; None when it succeeded, else the last error."""
    error = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            call()
        except Exception as exc:  # any Hub or network error: sorted below
            error = first_line(exc)
            print(f"thinnka: {what} failed (attempt {attempt} of {ATTEMPTS}): {error}",
                  file=sys.stderr, flush=True)  # fmt: skip
            if not retryable(exc) or attempt == ATTEMPTS:
                return error
            time.sleep(pause)
            pause *= 2
            continue
        return None
    return error


def push(repo: str, output_dir: Path, pause: float) -> str | None:
    """Upload the folder (checkpoints left out); None when pushed, else the last error."""
    from huggingface_hub import HfApi

    api = HfApi()
    error = retried(
        f"pushing {output_dir} to {repo}",
        lambda: api.upload_folder(
            repo_id=repo,
            folder_path=str(output_dir),
            commit_message="End of training",
            ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**"],
        ),
        pause,
    )
    if error is None:
        print(f"thinnka: pushed {output_dir} to {repo}", flush=True)
    return error


def main() -> int:
    run_dir = Path(__file__).resolve().parent
    repo = os.environ.get("THINNKA_PUSH_REPO", "")
    output_dir = Path(os.environ.get("THINNKA_OUTPUT_DIR", ""))
    stamp = os.environ.get("THINNKA_JOB_STAMP")
    since = os.path.getmtime(stamp) if stamp and os.path.exists(stamp) else None
    if not repo or not output_dir.name or not saved_model(output_dir, since):
        return NOTHING
    print(f"thinnka: the trainer saved its model in {output_dir} but did not push it; "
          f"pushing it to {repo}", flush=True)  # fmt: skip
    pause = float(os.environ.get("THINNKA_PUSH_PAUSE_S") or 5.0)
    error = push(repo, output_dir, pause)
    if error is None:
        (run_dir / HELD_FILE).unlink(missing_ok=True)
        return PUSHED
    # run.env as job.sh reads it: the repo, the folder, HF_HOME (the token) and HF_ENDPOINT.
    command = (f"cd {shlex.quote(str(run_dir))} && set -a && . ./run.env && set +a && "
               f"{shlex.quote(sys.executable)} thinnka_push.py")  # fmt: skip
    held = {"repo": repo, "output_dir": str(output_dir), "error": error, "command": command,
            "at": time.time()}  # fmt: skip
    tmp = run_dir / (HELD_FILE + ".tmp")
    tmp.write_text(json.dumps(held, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / HELD_FILE)
    print(f"thinnka: the model is saved in {output_dir} but could not be pushed to {repo}; "
          f"push it by hand: {command}", file=sys.stderr, flush=True)  # fmt: skip
    return HELD


if __name__ == "__main__":
    sys.exit(main())

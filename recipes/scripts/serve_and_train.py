"""vLLM server mode on one pod: serve on the first GPU, train on the others, stop the server.

Usage: ``python serve_and_train.py serve_and_train.json`` (written by thinnka). The JSON holds
the two argv lists and the GPU split, so nothing is pasted into a shell line:

    {"server": [...], "server_gpus": "0", "train": [...], "train_gpus": "1,2,3",
     "health_urls": [...], "startup_timeout_s": 1800}

The training's exit status is this script's exit status. The server is stopped (its whole
process group, SIGTERM then SIGKILL) whenever training ends, and training never starts when
the server dies or stays unhealthy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def _healthy(urls: list[str]) -> bool:
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return False


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run(settings: dict[str, Any]) -> int:
    server_env = dict(os.environ, CUDA_VISIBLE_DEVICES=settings["server_gpus"])
    train_env = dict(os.environ, CUDA_VISIBLE_DEVICES=settings["train_gpus"])
    print(f"thinnka: starting the vLLM server on GPU {settings['server_gpus']}", flush=True)
    # Its own process group, so stopping it also stops vLLM's worker processes.
    server = subprocess.Popen(settings["server"], env=server_env, start_new_session=True)
    try:
        deadline = time.monotonic() + float(settings.get("startup_timeout_s", 1800))
        while not _healthy(settings["health_urls"]):
            if server.poll() is not None:
                print(
                    f"thinnka: the vLLM server exited with status {server.returncode} "
                    "before it was ready",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            if time.monotonic() > deadline:
                print(
                    "thinnka: the vLLM server was not healthy in time", file=sys.stderr, flush=True
                )
                return 1
            time.sleep(float(settings.get("poll_s", 5)))
        print(f"thinnka: server ready; training on GPUs {settings['train_gpus']}", flush=True)
        return subprocess.call(settings["train"], env=train_env)
    finally:
        _stop(server)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: serve_and_train.py SETTINGS.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        settings = json.load(handle)
    # SIGTERM (thinnka cancel) must still run run()'s finally and stop the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

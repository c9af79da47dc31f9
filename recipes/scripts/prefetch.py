"""Download the run's model and data set into $HF_HOME while the trainer stack installs.

Started in the background by the setup scripts (setup_common.sh) with any python that has
huggingface_hub. The trainer later finds every file in the Hub cache on the volume, so the
download overlaps the install instead of following it. The token is the one thinnka put in
$HF_HOME/token; huggingface_hub reads it there itself (it is never on a command line).
Reads THINNKA_PREFETCH_MODEL, THINNKA_PREFETCH_DATASET (either may be empty).
"""

from __future__ import annotations

import os
import sys
import time

# Weights in these formats are never what transformers loads when safetensors exist; a
# repository that has only them still gets them (the second pass below).
_OTHER_WEIGHTS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.onnx", "*.gguf"]


def _model(repo_id: str) -> str:
    from huggingface_hub import snapshot_download

    path = snapshot_download(repo_id, ignore_patterns=_OTHER_WEIGHTS)
    if not any(name.endswith(".safetensors") for name in os.listdir(path)):
        path = snapshot_download(repo_id)
    return path


def _dataset(repo_id: str) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, repo_type="dataset")


def main() -> int:
    jobs = [
        (kind, repo_id, fetch)
        for kind, repo_id, fetch in (
            ("model", os.environ.get("THINNKA_PREFETCH_MODEL", ""), _model),
            ("data set", os.environ.get("THINNKA_PREFETCH_DATASET", ""), _dataset),
        )
        if repo_id
    ]
    failed = 0
    for kind, repo_id, fetch in jobs:
        started = time.monotonic()
        try:
            fetch(repo_id)
        except Exception as exc:  # reported, never fatal: the trainer downloads it again
            print(f"thinnka: {kind} {repo_id}: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        print(f"thinnka: {kind} {repo_id} downloaded in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

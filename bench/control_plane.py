"""Control-plane overhead of one `thinnka run` against the emulated world (goal: under 2 s).

The world boots pods at once (zero boot delay), the training is one step of the
tiny model on CPU, and the database exists already (not a first run ever).
Overhead = the run's wall time minus the time the remote jobs themselves ran
(setup and train, from their pid/exit files), so it is what thinnka adds:
process start, checks, API calls, SSH, uploads, polling.
Run: python bench/control_plane.py
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from _common import emulated_world, report


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp).timestamp()


def job_seconds(run_dir: Path, name: str) -> float:
    return (run_dir / f"{name}.exit").stat().st_mtime - (run_dir / f"{name}.pid").stat().st_mtime


def main() -> None:
    overheads, totals = [], []
    with emulated_world() as emulated:
        hub = emulated.hub
        venv = emulated.pod_venv()
        for attempt in range(4):
            world = emulated.world(f"run{attempt}", venv)
            world.thinnka("ls")  # an installation that has run before: its database exists
            started = time.perf_counter()
            wall_start = time.time()
            result = world.thinnka(
                "run", "--repo-id", hub.models.chat, "--sft", "--max-steps", "1",
                "--dataset-name", hub.datasets.sft, "--trainer", "trl",
                "--set", "use_cpu=true", "--set", "bf16=false", "--set", "torch_dtype=float32",
            )  # fmt: skip
            total = time.perf_counter() - started
            wall_end = time.time()
            assert result.returncode == 0, result.stderr[-2000:]
            run_id = result.stdout.split()[1]
            shown = json.loads(world.thinnka("show", run_id, "--json").stdout)
            run_dir = Path(shown["remote"]["run_dir"])
            remote = job_seconds(run_dir, "setup") + job_seconds(run_dir, "train")
            if attempt == 0:
                continue  # the first run installs into the fresh pod venv
            lines = result.stderr.splitlines()
            steps = [json.loads(line) for line in lines if '"transition"' in line]
            timing = ", ".join(f"{s['trigger']} {s['elapsed_s']:.2f}" for s in steps)
            first = _epoch(steps[0]["timestamp"]) - steps[0]["elapsed_s"]
            last = _epoch(steps[-1]["timestamp"])
            print(f"  before the first step {first - wall_start:.2f} s, "
                  f"after the last {wall_end - last:.2f} s")  # fmt: skip
            setup, train = job_seconds(run_dir, "setup"), job_seconds(run_dir, "train")
            print(f"  steps: {timing} | remote setup {setup:.2f} train {train:.2f}")
            totals.append(total)
            overheads.append(total - remote)
    report("run wall time (1 training step)", totals)
    report("control-plane overhead (wall minus remote jobs)", overheads, goal=2.0)


if __name__ == "__main__":
    main()

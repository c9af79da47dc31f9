"""Control-plane overhead of one `thinnka run` against the emulated world (goal: under 1.5 s).

Overhead is what thinnka adds to a run: process start, checks, API calls, polling, SSH,
uploads. It is the run's wall time minus the time spent waiting for the pod: the remote
jobs (setup and train, from their pid/exit files) and the pod's boot. The emulator shows a
pod's SSH port ``BOOT_DELAY_S`` after its create; that fixed time is subtracted, while
noticing the port late (a slow poll) stays in the overhead. The training is one step of
the tiny model on CPU, and the database exists already (not a first run ever).

It also reports the time from starting `thinnka run` to the pod's create request, as the
Runpod emulator received it (goal: under 0.5 s): all that comes before any money is spent.

Run: python bench/control_plane.py [--runs N] [--vs CHECKOUT] [--machine-home]

The emulated pods have a home of their own with an image's stock bashrc. ``--machine-home``
gives them this machine's HOME instead (what the emulator did before): on the CI machine its
~/.bashrc initialises pyenv, which the pod's login shell then runs before every command.

With ``--vs``, runs of this checkout (A) and of CHECKOUT (B, another thinnka tree, e.g.
made with ``git worktree add``) take turns in one emulated world, A B B A A B ..., so both
figures come from one invocation under the same load; each pair's A − B is reported too. Each
checkout goes first in every other pair (A B, B A, ...).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

from _common import ROOT, Emulated, emulated_world, report

# The emulator's default: a pod that boots this fast shows whether the poll notices it fast.
BOOT_DELAY_S = 0.6
# The pod's create on REST v2, thinnka's default transport.
CREATE = ("POST", "/v2/pods")


@dataclass(frozen=True)
class Sample:
    total: float  # the run's wall time
    overhead: float  # total minus the remote jobs and the boot
    to_create: float  # from starting the process to the pod's create request


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp).timestamp()


def job_seconds(run_dir: Path, name: str) -> float:
    return (run_dir / f"{name}.exit").stat().st_mtime - (run_dir / f"{name}.pid").stat().st_mtime


def measure(emulated: Emulated, venv: Path, name: str, checkout: Path) -> Sample:
    """One run of thinnka from ``checkout`` in a fresh working folder; prints its steps."""
    hub = emulated.hub
    world = emulated.world(name, venv)
    world.env["PYTHONPATH"] = str(checkout)
    world.thinnka("ls")  # an installation that has run before: its database exists
    seen = len(emulated.runpod.requests())
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
    setup, train = job_seconds(run_dir, "setup"), job_seconds(run_dir, "train")
    lines = result.stderr.splitlines()
    steps = [json.loads(line) for line in lines if '"transition"' in line]
    timing = ", ".join(f"{s['trigger']} {s['elapsed_s']:.2f}" for s in steps)
    first = _epoch(steps[0]["timestamp"]) - steps[0]["elapsed_s"]
    last = _epoch(steps[-1]["timestamp"])
    overhead = total - setup - train - BOOT_DELAY_S
    creates = [r.at for r in emulated.runpod.requests()[seen:] if (r.method, r.path) == CREATE]
    to_create = creates[0] - wall_start
    before, after = first - wall_start, wall_end - last
    print(f"  {name}: overhead {overhead:.2f} s | create request at {to_create:.2f} s | "
          f"before the first step {before:.2f} s, after the last {after:.2f} s")  # fmt: skip
    print(f"    steps: {timing} | remote setup {setup:.2f} train {train:.2f}", flush=True)
    return Sample(total, overhead, to_create)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per checkout")
    parser.add_argument("--vs", type=Path, help="another thinnka checkout to pair against")
    parser.add_argument(
        "--machine-home", action="store_true", help="pods read this machine's ~/.bashrc"
    )
    args = parser.parse_args()
    checkouts = {"A": ROOT} if args.vs is None else {"A": ROOT, "B": args.vs.resolve()}
    samples: dict[str, list[Sample]] = {label: [] for label in checkouts}
    home = Path.home() if args.machine_home else None
    with emulated_world(boot_delay=BOOT_DELAY_S, pod_home=home) as emulated:
        venv = emulated.pod_venv()
        for label, checkout in checkouts.items():
            measure(emulated, venv, f"warmup-{label}", checkout)  # installs into the pod venv
        for attempt in range(args.runs):
            # Each checkout goes first in every other pair: on a loaded machine the first of a
            # pair was seen to start slower (A B, B A, A B ...).
            order = list(checkouts.items())
            for label, checkout in order if attempt % 2 == 0 else order[::-1]:
                samples[label].append(measure(emulated, venv, f"{label}{attempt}", checkout))
    for label, checkout in checkouts.items():
        prefix = f"{label} ({checkout}) " if args.vs else ""
        report(f"{prefix}run wall time (1 training step)", [s.total for s in samples[label]])
        report(
            f"{prefix}control-plane overhead (wall minus remote jobs and boot)",
            [s.overhead for s in samples[label]],
            goal=1.5,
        )
        report(
            f"{prefix}start to the pod's create request",
            [s.to_create for s in samples[label]],
            goal=0.5,
        )
    if args.vs:
        pairs = list(zip(samples["A"], samples["B"], strict=True))
        report("overhead A − B, pair by pair", [a.overhead - b.overhead for a, b in pairs])
        report("create request A − B, pair by pair", [a.to_create - b.to_create for a, b in pairs])


if __name__ == "__main__":
    main()

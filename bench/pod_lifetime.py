"""How long a pod outlives its job, by who follows the run (emulated world, stand-in trainer).

* attached: ``thinnka run`` follows to the end and terminates the pod itself;
* detached: ``run --detach``, nobody follows: the pod's watchdog ends it after the grace;
* dead: ``run`` is SIGKILLed during training: the watchdog again;
* between jobs: ``run`` dies after setup ended, before the training started
  (``THINNKA_CRASH_AT=install:after_write``): the watchdog ends the idle pod after
  the orphan grace (five grace periods).

"Outlives" = the pod's termination (the emulator's ledger) minus the last job's exit
(its ``train.exit`` file; ``setup.exit`` between jobs). Goal: attached under 5 s; detached
and dead under the grace plus 5 s; between jobs under the orphan grace plus 5 s.
Run: python bench/pod_lifetime.py [--grace S] [--repeat N]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from _common import emulated_world, report


def main() -> None:
    from tests.world.standin_trainer import standin_run
    from thinnka.options.limits import ORPHAN_GRACE_FACTOR

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    cases = ("attached", "detached", "dead", "between jobs")
    results: dict[str, list[float]] = {case: [] for case in cases}
    with emulated_world() as emulated:
        runpod = emulated.runpod
        venv = emulated.pod_venv(standin=True)
        n = 0
        for _ in range(args.repeat):
            for case in results:
                n += 1
                world = emulated.world(f"w{n}", venv)
                (world.remote_root / "standin.json").write_text('{"steps": 30, "step_s": 0.1}')
                argv = standin_run(world, "--watchdog-grace", f"{args.grace:g}")
                if case == "detached":
                    argv.append("--detach")
                env = dict(world.env)
                if case == "between jobs":
                    env["THINNKA_CRASH_AT"] = "install:after_write"  # setup done, no training
                proc = subprocess.Popen(world.command(*argv), cwd=world.workdir, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True)  # fmt: skip
                assert proc.stdout is not None
                run_id = proc.stdout.readline().split()[1]
                if case == "dead":
                    deadline = time.monotonic() + 300
                    while world.show(run_id)["state"] != "training":
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{run_id} never started training")
                        time.sleep(0.2)
                    proc.kill()
                proc.wait(timeout=600)
                shown = world.show(run_id)
                run_dir = Path(shown["remote"]["run_dir"])
                deadline = time.monotonic() + ORPHAN_GRACE_FACTOR * args.grace + 120
                while runpod.pod(shown["pod_id"]) is not None:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"pod {shown['pod_id']} of {run_id} was never terminated")
                    time.sleep(0.1)
                entry = next(e for e in runpod.ledger() if e.pod_id == shown["pod_id"])
                assert entry.terminated_at is not None
                job = "setup" if case == "between jobs" else "train"
                outlived = entry.terminated_at - (run_dir / f"{job}.exit").stat().st_mtime
                print(f"  {case}: {outlived:.2f} s ({entry.terminated_by})", flush=True)
                results[case].append(outlived)
                if shown["state"] != "terminated":
                    subprocess.run(world.command("resume", run_id), cwd=world.workdir,
                                   env=world.env, capture_output=True, timeout=120)  # fmt: skip
    report("pod outlives its job, orchestrator attached", results["attached"], goal=5.0)
    for case in ("detached", "dead"):
        report(f"pod outlives its job, orchestrator {case}", results[case], goal=args.grace + 5)
    report(
        "pod outlives its last job, orchestrator dead between jobs",
        results["between jobs"],
        goal=ORPHAN_GRACE_FACTOR * args.grace + 5,
    )


if __name__ == "__main__":
    main()

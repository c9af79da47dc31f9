"""Latency of one command over an open SSH session: fabric's runner vs thinnka's channel.

``PodShell.run`` used fabric's ``Connection.run`` (invoke's runner: reader threads polled
every 10 ms, joined at the end); it now reads a paramiko channel in the caller's thread.
Both run here in turns on the same connection to the emulated pod (a real OpenSSH sshd on
127.0.0.1), the old path exactly as ``run`` called it, so a pair sees the same load. Also
``make_dirs`` of a folder that exists (one SFTP ``stat`` now; one per path component before).

sshd's login shell reads the user's ``~/.bashrc`` before each command. The emulated pod has a
home of its own with an image's stock bashrc (it stops at once in a non-interactive shell), so
what is measured is the client's and sshd's own time. ``--machine-home`` gives the pod this
machine's HOME instead; where its bashrc is slow (CI's initialises pyenv: 0.1-0.2 s) that hides
the client's part.
Run: python bench/ssh_command.py [--pairs N] [--machine-home]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40, help="old/new pairs per command")
    parser.add_argument(
        "--machine-home", action="store_true", help="the pod reads this machine's ~/.bashrc"
    )
    args = parser.parse_args()
    pairs = args.pairs

    from tests.world.sshd import FakeSshd
    from thinnka.clients.ssh import SshTarget, _bash, connect

    commands = {
        "true": "true",
        "64 KiB of output": "head -c 65536 /dev/zero | tr '\\0' x",
    }
    with tempfile.TemporaryDirectory(prefix="thinnka-bench-") as folder:
        root = Path(folder)
        home = Path.home() if args.machine_home else None
        with FakeSshd(root / "sshd", home=home) as sshd:
            target = SshTarget(sshd.host, sshd.port, sshd.user, sshd.private_key_path)
            with connect(target, deadline=time.monotonic() + 30) as shell:

                def old(script: str) -> None:
                    shell._connection.run(
                        _bash(script), hide=True, warn=True, in_stream=False, timeout=60
                    )

                def new(script: str) -> None:
                    shell.run(script, timeout=60)

                for name, script in commands.items():
                    old(script), new(script)  # warm both paths
                    samples: dict[str, list[float]] = {"old": [], "new": []}
                    for i in range(pairs):
                        order = [("old", old), ("new", new)]
                        for label, call in order if i % 2 == 0 else order[::-1]:
                            started = time.perf_counter()
                            call(script)
                            samples[label].append(time.perf_counter() - started)
                    report(f"{name}: fabric Connection.run (before)", samples["old"])
                    report(f"{name}: PodShell.run (now)", samples["new"])
                    saved = [o - n for o, n in zip(samples["old"], samples["new"], strict=True)]
                    saved_ms = statistics.median(saved) * 1000
                    print(f"  saved per command, pair by pair: median {saved_ms:.1f} ms")

                deep = root / "a" / "b" / "c" / "d" / "e"
                deep.mkdir(parents=True)
                sftp = shell.sftp()

                def walk(path: str) -> None:  # what make_dirs did: a stat per component
                    current = ""
                    for part in path.strip("/").split("/"):
                        current = f"{current}/{part}"
                        sftp.stat(current)

                dirs: dict[str, list[float]] = {"old": [], "new": []}
                for i in range(pairs):
                    order = [("old", walk), ("new", shell.make_dirs)]
                    for label, call in order if i % 2 == 0 else order[::-1]:
                        started = time.perf_counter()
                        call(str(deep))
                        dirs[label].append(time.perf_counter() - started)
                what = f"make_dirs, an existing {len(deep.parts) - 1}-deep folder"
                for label, when in (("old", "a stat each (before)"), ("new", "one stat (now)")):
                    median_ms = statistics.median(dirs[label]) * 1000
                    print(f"{what}: {when}: median {median_ms:.2f} ms, n={pairs}")


if __name__ == "__main__":
    main()

"""Run ``thinnka`` with every process held at the lease takeover until all have arrived.

Two ``thinnka resume`` started together race for a dead holder's lease only if both read
the dead holder before either takes it over; left to chance that window is a few
milliseconds wide. This wrapper makes the race certain without changing thinnka: it wraps
``Store.take_over_lease`` so that each process, on entering it, leaves a file in a shared
folder and waits (at most ``_WAIT_S``) until ``count`` files are there; then the real
takeover runs, and exactly one can win.

    python -m tests.world.takeover_barrier FOLDER COUNT resume RUN_ID
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

_WAIT_S = 60.0


def main(argv: list[str]) -> None:
    folder, count, args = Path(argv[0]), int(argv[1]), argv[2:]

    from thinnka.store.repo import Store

    real = Store.take_over_lease

    def held_until_all_arrive(self: Store, *a: Any, **kw: Any) -> bool:
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + _WAIT_S
        while len(list(folder.iterdir())) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return real(self, *a, **kw)

    Store.take_over_lease = held_until_all_arrive  # type: ignore[method-assign]
    sys.argv = ["thinnka", *args]
    from thinnka.cli import main as thinnka_main

    thinnka_main()


if __name__ == "__main__":
    main(sys.argv[1:])

"""Wall time of `thinnka --help` (goal: under 0.3 s). Run: python bench/help_time.py"""

from __future__ import annotations

import subprocess
import sys

from _common import report, timed


def main() -> None:
    def once() -> None:
        subprocess.run([sys.executable, "-m", "thinnka", "--help"], check=True,
                       capture_output=True)  # fmt: skip

    once()  # warm the file cache
    report("thinnka --help", timed(once, 15), goal=0.3)


if __name__ == "__main__":
    main()

"""thinnka's command line: a thin typer layer over ``thinnka.operations``.

Exit codes: 0 success; 1 the run failed or was cancelled (or a remote error);
2 usage or validation error (nothing was created); 130 interrupted. Heavy
libraries are imported inside the commands, so ``thinnka --help`` stays fast.
"""

from __future__ import annotations

import sys

from thinnka.cli.app import app

__all__ = ["app", "main"]

# Importing the command modules registers their commands, in this order in --help.
from thinnka.cli import inspect as _inspect
from thinnka.cli import ops as _ops
from thinnka.cli import runs as _runs

_ = (_runs, _inspect, _ops)


def main() -> None:
    """Console entry point: map thinnka's errors to exit codes and short messages."""
    import atexit
    import logging
    import os

    from thinnka.cli.exit_codes import run_app

    code = run_app(app)
    # Tearing down the interpreter (finalising paramiko, SQLAlchemy, httpx and
    # friends) costs about a third of a second after all work is done and
    # recorded. Run the exit hooks, flush, and leave without it.
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

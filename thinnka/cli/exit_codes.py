"""Turning exceptions into exit codes and one clear line on stderr.

Every message printed here passes the same scrubber as the log lines, so a
secret inside an error (a URL's password, a token a library quoted) is never
shown.
"""

from __future__ import annotations

import sys

import typer

from thinnka.errors import ConfigError, LeaseHeld, RefusedChoice, RunNotFound, ThinnkaError
from thinnka.logs import redact

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "run_app"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, ConfigError | RunNotFound | RefusedChoice):
        return EXIT_USAGE
    return EXIT_FAILED


def run_app(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the typer app; never let a traceback reach the user for expected errors."""
    try:
        result = app(args=args, standalone_mode=False)
    except typer.Abort:
        return EXIT_INTERRUPTED
    except typer.Exit as done:
        return done.exit_code
    except typer.TyperException as usage:  # typer's (vendored click's) usage errors
        show = getattr(usage, "show", None)
        if show is not None:
            show()
        else:
            print(f"Error: {usage}", file=sys.stderr)
        return int(getattr(usage, "exit_code", EXIT_USAGE) or EXIT_USAGE)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LeaseHeld as held:
        print(f"Error: {redact(held.message)}", file=sys.stderr)
        return EXIT_FAILED
    except ThinnkaError as error:
        print(f"Error: {redact(error.message)}", file=sys.stderr)
        return exit_code_for(error)
    return result if isinstance(result, int) else EXIT_OK

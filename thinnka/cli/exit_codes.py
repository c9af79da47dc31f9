"""Turning exceptions into exit codes and one clear line on stderr.

Every message printed here passes the same scrubber as the log lines, so a
secret inside an error (a URL's password, a token a library quoted) is never
shown, in the JSON error object of a ``--json`` command either.
"""

from __future__ import annotations

import json
import sys

import typer

from thinnka.errors import ConfigError, RefusedChoice, RunNotFound, ThinnkaError
from thinnka.logs import redact
from thinnka.reasons import Reason

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
    """Run the typer app; never let a traceback reach the user for expected errors.

    A command given ``--json`` that fails also prints ``{"error": {"message", "code",
    "reason"}}`` on stdout (what a script reads), with the same exit code.
    """
    argv = sys.argv[1:] if args is None else list(args)
    try:
        result = app(args=argv, standalone_mode=False)
    except typer.Abort:
        return _failed(app, argv, "Aborted.", EXIT_INTERRUPTED, Reason.interrupted)
    except typer.Exit as done:
        return done.exit_code
    except typer.TyperException as usage:  # typer's (vendored click's) usage errors
        show = getattr(usage, "show", None)
        if show is not None:
            show()
        else:
            print(f"Error: {usage}", file=sys.stderr)
        code = int(getattr(usage, "exit_code", EXIT_USAGE) or EXIT_USAGE)
        formatted = getattr(usage, "format_message", None)
        text = formatted() if formatted is not None else str(usage)
        return _failed(app, argv, redact(text), code, Reason.invalid_config)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return _failed(app, argv, "Interrupted.", EXIT_INTERRUPTED, Reason.interrupted)
    except ThinnkaError as error:
        message = redact(error.message)
        print(f"Error: {message}", file=sys.stderr)
        return _failed(app, argv, message, exit_code_for(error), error.reason)
    except Exception as bug:  # a bug: its traceback goes on to stderr as before
        message = f"Internal error: {type(bug).__name__}: {redact(str(bug))}"
        _failed(app, argv, message.splitlines()[0], EXIT_FAILED, Reason.internal)
        raise
    return result if isinstance(result, int) else EXIT_OK


def _failed(app: typer.Typer, argv: list[str], message: str, code: int, reason: Reason) -> int:
    """``code``, after the JSON error object where the command was given ``--json``."""
    if _asked_for_json(app, argv):
        error = {"message": " ".join(message.split()), "code": code, "reason": reason.value}
        sys.stdout.write(json.dumps({"error": error}, indent=2) + "\n")
        sys.stdout.flush()
    return code


def _asked_for_json(app: typer.Typer, argv: list[str]) -> bool:
    """``--json`` among the options (not after ``--``) of a command that has it."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    if "--json" not in options:
        return False
    name = next((arg for arg in options if not arg.startswith("-")), None)
    command = getattr(typer.main.get_command(app), "commands", {}).get(name)
    return command is not None and any("--json" in param.opts for param in command.params)

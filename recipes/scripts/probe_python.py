"""What a python is, as the setup scripts need to know it: run BY that python.

setup_trl.sh runs it with the image's python before anything is downloaded, so the
interpreter it reports is the one the trainer venv is built from, and again with the new
venv's python to check that venv sees the image's torch. Prints KEY<TAB>VALUE lines:

  executable  sys.executable: the interpreter itself, where the command was a pyenv shim
              or a symlink; for a virtualenv its own bin/python (what makes it that venv)
  version     X.Y.Z
  venv        1 for a virtualenv (sys.prefix differs from sys.base_prefix), else 0
  site        each site-packages folder it reads, a virtualenv's own first (repeated key)
  torch       torch's installed version, empty without torch
  torch_dir   the folder torch is imported from (its parent), empty without torch

Standard library only, and nothing newer than Python 3.7 in its syntax: an outdated
interpreter must still run it and say its version, so the caller can refuse it by name.
torch is found, never imported (importing it takes seconds).
"""

from __future__ import annotations

import os
import site
import sys


def _torch() -> tuple[str, str]:
    """(version, folder) of the torch this python would import, or two empty strings."""
    try:
        import importlib.metadata as metadata  # 3.8+; older pythons are refused anyway
        import importlib.util
    except ImportError:
        return "", ""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "", ""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "", ""  # metadata without the package: not a torch to use
    return version, os.path.dirname(next(iter(spec.submodule_search_locations)))


def main() -> int:
    base = getattr(sys, "base_prefix", sys.prefix)
    try:
        sites = site.getsitepackages()
    except AttributeError:  # old virtualenv's site.py has none
        sites = []
    torch, torch_dir = _torch()
    lines = [
        ("executable", sys.executable),
        ("version", ".".join(str(part) for part in sys.version_info[:3])),
        ("venv", "1" if os.path.realpath(base) != os.path.realpath(sys.prefix) else "0"),
    ]
    lines += [("site", path) for path in sites]
    lines += [("torch", torch), ("torch_dir", torch_dir)]
    for key, value in lines:
        sys.stdout.write(f"{key}\t{value}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the data folders (recipes/, migrations/) are, installed or not.

In a wheel they travel inside the package as ``thinnka/_data/<name>``; in a
checkout (editable install, tests) they sit at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["resource_dir"]

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder ``recipes`` or ``migrations``, wherever this thinnka came from."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"thinnka's {name}/ folder is missing from this installation")

"""Pod images for the emulated world: the python layouts of real images, and a local PyPI.

thinnka's setup builds the trainer venv from whatever ``python3`` the image's ``PATH`` names
and reuses that python's torch. Images differ in what that python is; each layout here is
built from this machine's own interpreter (so torch, built for it, imports) in a folder of
its own, and reaches the emulated pod as the image's ``ENV`` (``FakeRunpod.set_image_env``):

* ``system``: torch in the base interpreter's own site-packages (``runpod/pytorch``: pip
  installed torch into the image's ``/usr`` python);
* ``venv``: a virtualenv first on ``PATH`` with torch (``python -m venv /opt/venv`` and
  ``ENV PATH=/opt/venv/bin:$PATH``; uv-based images), and uv on ``PATH``;
* ``conda``: a conda-style base prefix first on ``PATH`` (``/opt/conda``, ``conda-meta``)
  with torch in its site-packages;
* ``no_torch``: a base interpreter with nothing installed;
* ``broken``: a ``python3`` that cannot start (its standard library was never copied,
  as by a multi-stage build that took only the binary).

A base interpreter is a copy of this interpreter's executable beside links to its standard
library (a copy of the executable, not a link: Python finds its prefix from where the
executable really lies). torch and what it imports are links into this environment's
site-packages: nothing reads them but imports, and the setup only ever writes into the
trainer venv.

The local PyPI (``wheelhouse``) holds wheels of the trainer stack re-packed from this
environment's installed files, so the pods' uv and pip install the real stack offline;
``index_env`` is what points them at it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

__all__ = [
    "LAYOUTS",
    "POD_PATH",
    "PodImage",
    "build_image",
    "closure",
    "index_env",
    "wheelhouse",
]

LAYOUTS = ("system", "venv", "conda", "no_torch", "broken")

# What an SSH session on a pod has on PATH besides what the image adds.
POD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
# Files of an installed dist-info that describe the installation, not the distribution.
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


@dataclass(frozen=True)
class PodImage:
    """One emulated image: its name for ``--image`` and what its ENV gives the pod."""

    name: str
    layout: str
    env: dict[str, str]
    python: Path  # the sys.executable the setup must report and build the venv from
    torch_site: Path | None  # the site-packages folder holding the image's torch


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions ``requirements`` need here, their dependencies included
    (markers evaluated for this interpreter, extras followed)."""
    env = default_environment()
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (_norm(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = found.get(key[0]) or metadata.distribution(req.name)
        found[key[0]] = dist
        for line in dist.requires or []:
            dep = Requirement(line)
            extras = [*req.extras, ""]
            if dep.marker is None or any(
                dep.marker.evaluate({**env, "extra": extra}) for extra in extras
            ):
                todo.append(dep)
    return sorted(found.values(), key=lambda d: _norm(d.metadata["Name"]))


def _dist_info(dist: metadata.Distribution) -> Path:
    path = getattr(dist, "_path", None)
    if path is None:
        raise RuntimeError(f"{dist.metadata['Name']} has no dist-info folder to read")
    return Path(path)


def _top_levels(dist: metadata.Distribution) -> set[str]:
    """The entries of site-packages that ``dist`` installed (packages, modules, .pth)."""
    names = set()
    for file in dist.files or []:
        parts = Path(file).parts
        if parts and parts[0] != ".." and parts[0] != "__pycache__":
            names.add(parts[0])
    return names


def _link_into(site: Path, dists: Iterable[metadata.Distribution]) -> None:
    site.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        origin = _dist_info(dist).parent
        for name in _top_levels(dist):
            target = site / name
            if (origin / name).exists() and not target.exists():
                target.symlink_to(origin / name)


def _base_python(prefix: Path) -> Path:
    """A base installation at ``prefix``: this interpreter's executable, copied, beside
    links to its standard library; an empty site-packages. Returns its ``bin/python3``."""
    executable = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(executable, prefix / "bin" / _VERSION)
    (prefix / "bin" / "python3").symlink_to(_VERSION)
    stdlib = Path(sysconfig.get_paths()["stdlib"])  # the base's, also from a venv
    ours = prefix / "lib" / _VERSION
    ours.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in {"site-packages", "dist-packages", "test", "__pycache__"}:
            (ours / entry.name).symlink_to(entry)
    python = prefix / "bin" / "python3"
    _site_of(python).mkdir(parents=True, exist_ok=True)
    return python


def _site_of(python: Path) -> Path:
    """The first site-packages folder ``python`` reads (where pip would install)."""
    out = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(out.stdout.strip())


def _torch_dists() -> list[metadata.Distribution]:
    return closure(["torch"])


def _uv_binary() -> Path | None:
    found = Path(sys.prefix) / "bin" / "uv"
    return found if found.exists() else None


def build_image(layout: str, root: Path, *, index: dict[str, str] | None = None) -> PodImage:
    """The emulated image ``layout`` (one of LAYOUTS) in the empty folder ``root``.

    ``index``: settings that send the pod's uv and pip to a local PyPI (``index_env``)."""
    name = f"thinnka-test/{layout.replace('_', '-')}:1"
    torch_site: Path | None = None
    if layout in ("system", "no_torch"):
        python = _base_python(root / "usr")
        if layout == "system":
            torch_site = _site_of(python)
            _link_into(torch_site, _torch_dists())
        path = [python.parent]
    elif layout == "conda":
        python = _base_python(root / "opt" / "conda")
        (python.parent / "python").symlink_to(_VERSION)
        (root / "opt" / "conda" / "conda-meta").mkdir()
        (root / "opt" / "conda" / "conda-meta" / "history").write_text("")
        torch_site = _site_of(python)
        _link_into(torch_site, _torch_dists())
        path = [python.parent]
    elif layout == "venv":
        base = _base_python(root / "usr")
        venv = root / "opt" / "venv"
        subprocess.run(
            [str(base), "-m", "venv", "--without-pip", str(venv)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        python = venv / "bin" / "python3"
        torch_site = _site_of(python)
        _link_into(torch_site, _torch_dists())
        tools = root / "usr" / "local" / "bin"
        tools.mkdir(parents=True)
        uv = _uv_binary()
        if uv is not None:  # uv-based images ship uv; the others bootstrap it
            (tools / "uv").symlink_to(uv)
        path = [venv / "bin", tools]
    elif layout == "broken":
        # The executable and os.py (the landmark Python takes its prefix from) but not the
        # rest of the library: it dies at start-up, without the "encodings" module.
        prefix = root / "usr" / "local"
        (prefix / "bin").mkdir(parents=True)
        executable = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
        shutil.copy2(executable, prefix / "bin" / _VERSION)
        (prefix / "bin" / "python3").symlink_to(_VERSION)
        (prefix / "lib" / _VERSION).mkdir(parents=True)
        shutil.copy2(Path(os.__file__), prefix / "lib" / _VERSION / "os.py")
        python = prefix / "bin" / "python3"
        path = [prefix / "bin"]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    env = {
        "PATH": os.pathsep.join([*map(str, path), POD_PATH]),
        # This machine's root bashrc may put pyenv's shims first on the session's PATH;
        # "system" makes a shim run the python3 that follows it on PATH, the image's.
        "PYENV_VERSION": "system",
        **(index or {}),
    }
    return PodImage(name, layout, env, python, torch_site)


# ------------------------------------------------------------------ the local PyPI
def _wheel_name(dist: metadata.Distribution, wheel_file: str) -> str:
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_file.splitlines() if line.startswith("Tag:")
    ]
    if not tags:
        raise RuntimeError(f"{dist.metadata['Name']}: its WHEEL file names no tag")
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    version = dist.version.replace("-", "_")
    return f"{name}-{version}-{'-'.join('.'.join(p) for p in parts)}.whl"


def _entry_point_scripts(dist: metadata.Distribution) -> set[str]:
    return {ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}


def _repack(dist: metadata.Distribution, folder: Path) -> Path:
    """A wheel of ``dist`` made from its installed files (stored, not compressed: it is
    read once, on this machine). Scripts an installer generates from entry points are
    left to the installer; other files in bin/ (uv's binary) go in as wheel scripts."""
    info = _dist_info(dist)
    site = info.parent
    wheel = folder / _wheel_name(dist, (info / "WHEEL").read_text())
    data = f"{info.name.removesuffix('.dist-info')}.data"
    generated = _entry_point_scripts(dist)
    record: list[str] = []
    partial = wheel.with_suffix(".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:

        def add(source: Path, arcname: str) -> None:
            payload = source.read_bytes()
            if arcname.startswith(f"{data}/scripts/") and payload.startswith(b"#!"):
                payload = b"#!python\n" + payload.split(b"\n", 1)[1]
            digest = base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).rstrip(b"=")
            entry = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = (source.stat().st_mode & 0xFFFF) << 16  # uv's binary: +x
            archive.writestr(entry, payload)
            record.append(f"{arcname},sha256={digest.decode()},{len(payload)}")

        for file in dist.files or []:
            parts = Path(file).parts
            source = (site / file).resolve()
            if "__pycache__" in parts or not source.is_file():
                continue
            if parts[0] == "..":
                if len(parts) >= 2 and parts[-2] == "bin" and parts[-1] not in generated:
                    add(source, f"{data}/scripts/{parts[-1]}")
                continue
            if parts[0] == info.name and parts[-1] in _INSTALL_ONLY:
                continue
            add(source, Path(file).as_posix())
        record.append(f"{info.name}/RECORD,,")
        archive.writestr(f"{info.name}/RECORD", "\n".join(record) + "\n")
    partial.rename(wheel)
    return wheel


def wheelhouse(folder: Path, requirements: Iterable[str]) -> Path:
    """A folder of wheels for ``requirements`` and everything they need, re-packed from
    this environment: what the emulated pods install from instead of PyPI."""
    folder.mkdir(parents=True, exist_ok=True)
    for dist in closure(requirements):
        _repack(dist, folder)
    return folder


def index_env(wheels: Path) -> dict[str, str]:
    """uv's and pip's own settings that make ``wheels`` their only package index."""
    return {
        "UV_OFFLINE": "1",
        "UV_FIND_LINKS": str(wheels),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
    }

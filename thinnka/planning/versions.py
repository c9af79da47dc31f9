"""Version pins of the two training stacks and the transformers choice.

Every pin lives here once. The Open R1 stack is the one upstream pins, plus pins for the two
packages upstream leaves open, flash-attn and peft (docs/trainers.md, "The pinned stack"); the
TRL stack is the one thinnka's own
test suite trains with on CPU, so what the pod installs is what the tests exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from thinnka.errors import ConfigError
from thinnka.resources import resource_dir

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = [
    "OPENR1_REF",
    "OPENR1_REPO",
    "OPENR1_STACK",
    "POD_TOOLS",
    "TRANSFORMERS_GIT",
    "TRANSFORMERS_WINDOWS",
    "TRL_PIN",
    "TRL_STACK",
    "TransformersChoice",
    "choose_transformers",
    "known_releases",
]

TRL_PIN = "1.13.0"
OPENR1_REF = "1416fa0"
OPENR1_REPO = "https://github.com/huggingface/open-r1.git"
TRANSFORMERS_GIT = "git+https://github.com/huggingface/transformers.git"
# What the setup scripts bootstrap from PyPI when the image lacks it.
POD_TOOLS = {"uv": "0.13.9"}

OPENR1_STACK = {
    "python": "3.11",
    "torch": "2.6.0",
    "vllm": "0.8.5.post1",
    "trl": "0.18.0",
    "transformers": "4.52.3",
    "accelerate": "1.4.0",
    "deepspeed": "0.16.8",
    # Upstream leaves flash-attn unpinned; 2.8.x breaks on torch 2.6 (open-r1 #684).
    "flash-attn": "2.7.4.post1",
    # Upstream lists peft in setup.py's _deps but in no install_requires or extra.
    "peft": "0.15.2",
}
TRL_STACK = {
    "trl": TRL_PIN,
    "transformers": "5.17.0",
    "accelerate": "1.15.0",
    "datasets": "5.0.1",
    "peft": "0.21.0",
    # From trl-1.13.0's metadata: the `deepspeed` and `vllm` extras.
    "deepspeed": ">=0.18.6",
    "vllm": ">=0.19.1,<=0.28.0",
    "math-verify": ">=0.5.2",
}

# Which transformers releases each stack accepts.
# openr1: vllm 0.8.5.post1 needs >=4.51.1; TRL 0.18 predates 4.56, which renamed
#   `torch_dtype` to `dtype` and reworked generation utilities that TRL 0.18 imports.
# trl: trl-1.13.0 METADATA says transformers>=4.56.2, but thinnka's trl recipes (and their
#   whitelist) are transformers 5's TrainingArguments: 4.x has `warmup_ratio` where 5.x takes a
#   ratio in `warmup_steps`, and the launcher refuses keys its transformers lacks. So 5.x only;
#   transformers 4.x runs on the openr1 trainer.
TRANSFORMERS_WINDOWS = {"openr1": SpecifierSet(">=4.51.1,<4.56"), "trl": SpecifierSet(">=5.0.0")}
_DEFAULTS = {"openr1": OPENR1_STACK["transformers"], "trl": TRL_STACK["transformers"]}
# trl-1.13.0's `deepspeed` extra excludes this release.
_DEEPSPEED_BAD = {"trl": {"5.1.0"}, "openr1": set()}


@dataclass(frozen=True)
class TransformersChoice:
    """The transformers to install on the pod, and why."""

    spec: str  # pip requirement; "" when nothing is installed (--skip-setup)
    version: str | None  # the release, None for git HEAD or "unchanged"
    reason: str
    from_git: bool = False


@lru_cache(maxsize=1)
def known_releases() -> tuple[Version, ...]:
    """transformers releases known to exist (recipes/schema/transformers_releases.txt)."""
    path = resource_dir("recipes") / "schema" / "transformers_releases.txt"
    lines = path.read_text().splitlines()
    return tuple(sorted(Version(x.strip()) for x in lines if x.strip() and not x.startswith("#")))


def _exists(v: Version) -> bool | None:
    """True/False when the list can tell; None for a version newer than the list knows."""
    releases = known_releases()
    if v in releases:
        return True
    return None if v > releases[-1] else False


def choose_transformers(
    options: RunOptions, trainer: str, model_version: str | None, *, deepspeed: bool
) -> TransformersChoice:
    """--transformers-from-git > --transformers-version > config.json's version > the stack pin."""
    window = TRANSFORMERS_WINDOWS[trainer]
    default = _DEFAULTS[trainer]
    if options.setup_skipped:
        return TransformersChoice("", None, "--skip-setup: the image's own transformers is used.")
    if options.transformers_from_git or options.transformers_version == "git":
        if trainer == "openr1":
            raise ConfigError(
                "--transformers-from-git installs transformers 5.x from git HEAD, which Open R1's "
                f"pinned TRL {OPENR1_STACK['trl']} cannot import (it needs transformers {window}). "
                "Use --trainer trl for models that need transformers from git."
            )
        return TransformersChoice(
            TRANSFORMERS_GIT,
            None,
            "Installing transformers from git HEAD (--transformers-from-git).",
            from_git=True,
        )
    if options.transformers_version:
        return _explicit(options.transformers_version, trainer, window, deepspeed=deepspeed)
    if model_version:
        picked = _from_model(model_version, trainer, window, deepspeed=deepspeed)
        if picked is not None:
            return picked
        return TransformersChoice(
            f"transformers=={default}",
            default,
            f"The model's config.json says transformers {model_version}, which is not a usable "
            f"release for the {trainer} trainer ({window}); using the stack's pin {default}. "
            "Pass --transformers-version to choose another.",
        )
    return TransformersChoice(
        f"transformers=={default}",
        default,
        f"The model's config.json names no transformers version; using the {trainer} stack's "
        f"pin {default}.",
    )


def _explicit(
    raw: str, trainer: str, window: SpecifierSet, *, deepspeed: bool
) -> TransformersChoice:
    v = Version(raw)
    exists = _exists(v)
    if exists is False:
        nearest = min(
            known_releases(),
            key=lambda r: (abs(r.major - v.major), abs(r.minor - v.minor), abs(r.micro - v.micro)),
        )
        raise ConfigError(
            f"--transformers-version {raw}: no such transformers release (nearest: {nearest})."
        )
    if v not in window:
        hint = " Use --trainer trl for newer transformers." if trainer == "openr1" else ""
        raise ConfigError(
            f"--transformers-version {raw} does not work with the {trainer} trainer's pins "
            f"(it needs transformers {window}).{hint}"
        )
    if deepspeed and raw in _DEEPSPEED_BAD[trainer]:
        raise ConfigError(
            f"transformers {raw} is excluded by TRL's DeepSpeed support; pick another."
        )
    note = "" if exists else " (newer than thinnka's list of releases; assumed to exist)"
    return TransformersChoice(
        f"transformers=={raw}",
        raw,
        f"Installing transformers {raw} (--transformers-version){note}.",
    )


def _from_model(
    raw: str, trainer: str, window: SpecifierSet, *, deepspeed: bool
) -> TransformersChoice | None:
    """The release that config.json's version maps to, or None to fall back to the default."""
    try:
        v = Version(raw)
    except InvalidVersion:
        return None
    if v.is_prerelease or v.is_devrelease:
        release = Version(v.base_version)
        if _exists(release) is not True:
            # A dev build of a release that was never published: only git HEAD has that code.
            if trainer != "trl":
                return None
            return TransformersChoice(
                TRANSFORMERS_GIT,
                None,
                f"The model's config.json says transformers {raw}, a development build whose "
                f"release {release} is not published; installing from git HEAD.",
                from_git=True,
            )
        v, why = release, f"development build {raw}, whose release {release} exists"
    else:
        if _exists(v) is False:
            return None
        why = str(v)
    if v not in window or (deepspeed and str(v) in _DEEPSPEED_BAD[trainer]):
        return None
    return TransformersChoice(
        f"transformers=={v}",
        str(v),
        f"Auto-detected from the model's config.json ({why}); fits the {trainer} stack ({window}).",
    )

"""Does the venv running this script have what the run's trainer needs?

Shared by setup_trl.sh and setup_openr1.sh (after installing) and by
check_image.sh (--skip-setup), so the three agree on what "ready" means.
Reads TRAINER, EXPECT_TRL and the NEED_* flags from the environment. Prints
every problem, one a line, and exits 1; or prints one "ready" line.

By default it only looks (each module findable, trl's installed version), which
takes well under a second: importing trl imports torch, seconds on its own.
``--import`` imports every module, as the setup scripts do once after installing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Mapping


def needed_modules(env: Mapping[str, str]) -> list[str]:
    trainer = env.get("TRAINER", "trl")
    needed = ["trl", "transformers", "accelerate", "datasets"]
    if trainer == "openr1":
        needed += ["open_r1", "deepspeed"]
    flags = {"NEED_PEFT": "peft", "NEED_BNB": "bitsandbytes", "NEED_VLLM": "vllm"}
    needed += [module for flag, module in flags.items() if env.get(flag) == "1"]
    if env.get("NEED_FLASH_ATTN") == "1":
        # Open R1's torch 2.6 stack uses the flash-attn wheel; the trl stack the kernels hub.
        needed.append("flash_attn" if trainer == "openr1" else "kernels")
    return needed


def _missing(name: str, *, load: bool) -> str | None:
    """Why ``name`` is not usable, or None."""
    try:
        if load:
            importlib.import_module(name)
        elif importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    except Exception as exc:  # report every missing piece at once
        return f"{name} does not import ({type(exc).__name__}: {exc})"
    return None


def problems(env: Mapping[str, str], *, load: bool = True) -> list[str]:
    found = [why for name in needed_modules(env) if (why := _missing(name, load=load))]
    if any(why.startswith("trl ") for why in found):
        return found  # already reported
    try:
        version = importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        return [*found, "trl has no installed distribution"]
    if version != env["EXPECT_TRL"]:
        found.append(f"trl is {version}, the recipe is for trl {env['EXPECT_TRL']}")
    return found


def main(argv: list[str]) -> int:
    load = "--import" in argv
    found = problems(os.environ, load=load)
    if found:
        print("\n".join(found))
        return 1
    versions = {name: importlib.metadata.version(name) for name in ("trl", "transformers")}
    checked = "imported" if load else "installed"
    print(
        f"thinnka: trl {versions['trl']}, transformers {versions['transformers']} ready ({checked})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

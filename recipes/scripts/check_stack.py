"""Does the venv running this script have what the run's trainer needs?

Shared by setup_trl.sh and setup_openr1.sh (after installing) and by
check_image.sh (--skip-setup), so the three agree on what "ready" means.
Reads TRAINER, EXPECT_TRL and the NEED_* flags from the environment. Prints
every problem, one a line, and exits 1; or prints one "ready" line.
"""

from __future__ import annotations

import importlib
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


def problems(env: Mapping[str, str]) -> list[str]:
    found = []
    for name in needed_modules(env):
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every missing piece at once
            found.append(f"{name} does not import ({type(exc).__name__}: {exc})")
    try:
        import trl
    except Exception:
        return found  # already reported above
    if trl.__version__ != env["EXPECT_TRL"]:
        found.append(f"trl is {trl.__version__}, the recipe is for trl {env['EXPECT_TRL']}")
    return found


def main() -> int:
    found = problems(os.environ)
    if found:
        print("\n".join(found))
        return 1
    import transformers
    import trl

    print(f"thinnka: trl {trl.__version__}, transformers {transformers.__version__} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())

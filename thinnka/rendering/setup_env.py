"""Values for the remote setup scripts, and the quoted env file that carries them.

The scripts in ``recipes/scripts`` never have values pasted into their text: they read
``KEY='value'`` lines (``write_env_file``, one ``shlex.quote`` per value) that job.sh sources
from run.env. Lists (packages, custom dependencies) are newline-separated values.

flash-attn: the Open R1 stack pins flash-attn 2.7.4.post1 (2.8.x breaks on its torch 2.6,
open-r1 #684). The TRL stack installs no flash-attn wheel at all: its torch is whatever vLLM
or the image brings, and no flash-attn pin is known to match every such torch. Instead it
installs ``transformers[kernels]``, and transformers (5.x) loads the prebuilt
``kernels-community/flash-attn2`` kernel for ``flash_attention_2`` from the Hub.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thinnka.planning.versions import OPENR1_REF, OPENR1_REPO, OPENR1_STACK, TRL_STACK

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.planning.facts import RemotePaths
    from thinnka.planning.training import TrainingPlan

__all__ = ["SETUP_KEYS", "SetupFacts", "setup_values", "write_env_file"]

_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# Every key the setup and check scripts read; the scripts hash these (in this order, as
# KEY=value lines) for their "already installed" marker.
SETUP_KEYS = (
    "TRAINER",
    "VENV",
    "PYTHON_VERSION",
    "TORCH_SPEC",
    "TORCH_INDEX_URL",
    "VLLM_SPEC",
    "FLASH_ATTN",
    "STACK_PACKAGES",
    "TRANSFORMERS_SPEC",
    "CUSTOM_DEPS",
    "OPENR1_DIR",
    "OPENR1_REPO",
    "OPENR1_REF",
    "EXPECT_TRL",
    "NEED_VLLM",
    "NEED_PEFT",
    "NEED_BNB",
    "NEED_FLASH_ATTN",
)


def write_env_file(values: Mapping[str, str]) -> str:
    """``KEY='value'`` lines for bash to ``source``; every value quoted with shlex.quote."""
    lines = []
    for key, value in values.items():
        if not _NAME.match(key):
            raise ValueError(f"env file key {key!r} is not a shell variable name")
        lines.append(f"{key}={shlex.quote(str(value))}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class SetupFacts:
    """What the setup needs to know about the run: all of it read off the TrainingPlan."""

    trainer: str
    venv: str
    openr1_dir: str
    grpo: bool
    vllm: bool
    quantized: bool
    peft: bool
    deepspeed: bool
    flash_attn: bool
    report_to: str
    transformers_spec: str
    custom: tuple[str, ...]
    trace: bool

    @classmethod
    def of(cls, plan: TrainingPlan, options: RunOptions, paths: RemotePaths) -> SetupFacts:
        return cls(
            trainer=plan.stack.name,
            venv=paths.venv,
            openr1_dir=paths.openr1_dir,
            grpo=plan.grpo,
            vllm=plan.vllm_mode is not None,
            quantized=plan.quantization is not None,
            peft=plan.peft,
            deepspeed=plan.zero_stage is not None,
            flash_attn=plan.attn == "flash_attention_2",
            report_to=options.report_to,
            transformers_spec=plan.transformers.spec,
            custom=options.custom_dependencies,
            trace=options.debug_remote,
        )


def _reporting(report_to: str) -> list[str]:
    return {"wandb": ["wandb"], "tensorboard": ["tensorboard"]}.get(report_to, [])


def _openr1(f: SetupFacts) -> tuple[list[str], dict[str, str]]:
    """Open R1's pinned stack: its own python, torch and vLLM, cloned at OPENR1_REF."""
    packages = [
        f"peft=={OPENR1_STACK['peft']}",
        "bitsandbytes>=0.43.2",
        # grpo.py imports dotenv at module level; only vLLM or open-r1's [code] extra brings it.
        "python-dotenv",
        *_reporting(f.report_to),
    ]
    values = {
        "PYTHON_VERSION": OPENR1_STACK["python"],
        "TORCH_SPEC": f"torch=={OPENR1_STACK['torch']}",
        # Always: open-r1 depends on trl[vllm], so pip would pull it in anyway.
        "VLLM_SPEC": f"vllm=={OPENR1_STACK['vllm']}",
        "FLASH_ATTN": f"flash-attn=={OPENR1_STACK['flash-attn']}" if f.flash_attn else "",
        "OPENR1_REPO": OPENR1_REPO,
        "OPENR1_REF": OPENR1_REF,
        "EXPECT_TRL": OPENR1_STACK["trl"],
    }
    return packages, values


def _trl(f: SetupFacts) -> tuple[list[str], dict[str, str]]:
    """The TRL stack: the image's python and torch, only what this run needs on top."""
    packages = [
        f"trl=={TRL_STACK['trl']}",
        f"accelerate=={TRL_STACK['accelerate']}",
        f"datasets=={TRL_STACK['datasets']}",
        f"peft=={TRL_STACK['peft']}",
    ]
    if f.quantized:
        packages.append("bitsandbytes>=0.43.2")
    if f.deepspeed:
        packages.append(f"deepspeed{TRL_STACK['deepspeed']}")
    if f.grpo:
        packages.append(f"math-verify{TRL_STACK['math-verify']}")
    packages += _reporting(f.report_to)
    values = {
        "PYTHON_VERSION": "",  # the image's python3 (probed on the pod), venv over its packages
        "TORCH_SPEC": "",  # the image's torch (or vLLM's pin)
        "VLLM_SPEC": f"vllm{TRL_STACK['vllm']}" if f.vllm else "",
        "FLASH_ATTN": "kernels" if f.flash_attn else "",
        "OPENR1_REPO": "",
        "OPENR1_REF": "",
        "EXPECT_TRL": TRL_STACK["trl"],
    }
    return packages, values


_STACK_VALUES = {"openr1": _openr1, "trl": _trl}


def setup_values(facts: SetupFacts) -> dict[str, str]:
    """The setup_env of Rendered: one value per SETUP_KEYS entry, plus THINNKA_TRACE."""
    f = facts
    packages, values = _STACK_VALUES[f.trainer](f)
    values.update(
        TRAINER=f.trainer,
        VENV=f.venv,
        TORCH_INDEX_URL="",
        STACK_PACKAGES="\n".join(packages),
        TRANSFORMERS_SPEC=f.transformers_spec,
        CUSTOM_DEPS="\n".join(f.custom),
        OPENR1_DIR=f.openr1_dir if values["OPENR1_REPO"] else "",
        NEED_VLLM="1" if f.vllm else "0",
        NEED_PEFT="1" if f.peft else "0",
        NEED_BNB="1" if f.quantized else "0",
        NEED_FLASH_ATTN="1" if f.flash_attn else "0",
    )
    ordered = {key: values[key] for key in SETUP_KEYS}
    ordered["THINNKA_TRACE"] = "1" if f.trace else "0"
    return ordered

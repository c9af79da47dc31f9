"""The two training stacks, each as one data object: what differs between them, in one place.

Everything that used to be a ``trainer == "openr1"`` branch somewhere (which template and
whitelist, which setup script and launcher, the transformers window, the reward registry,
the TRL defaults, the GPUs its torch build has kernels for) is a field here; code reads the
field instead of comparing names. Pure data: importing this pulls in no heavy library.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from thinnka.errors import ConfigError
from thinnka.planning.gpus import GpuSupport

__all__ = ["StackName", "TrainerStack", "stack_for", "stacks"]

StackName = Literal["openr1", "trl"]
Mode = Literal["grpo", "sft"]

# The names each trainer's reward registry resolves (open_r1/rewards.py at 1416fa0;
# trl/scripts/grpo.py in TRL 1.13). Anything else must be a dotted import path.
_OPENR1_REWARDS = (
    "accuracy",
    "format",
    "reasoning_steps",
    "cosine",
    "repetition_penalty",
    "length",
    "tag_count",
    "code",
    "binary_code",
    "ioi_code",
    "cf_code",
    "code_format",
    "soft_overlong_punishment",
)
_TRL_REWARDS = (
    "accuracy_reward",
    "reasoning_accuracy_reward",
    "think_format_reward",
    "get_soft_overlong_punishment",
)


@dataclass(frozen=True)
class TrainerStack:
    """One trainer stack (the packages the pod installs and the scripts that train)."""

    name: StackName
    display: str  # "Open R1", "TRL"
    trl_version: str  # what EXPECT_TRL checks on the pod
    # Where recipes/templates/<template>_<mode>.yaml and recipes/schema/<name>_<mode>.json live.
    template: str
    setup_script: str  # recipes/scripts/<setup_script>
    # The module or CLI that really trains, per mode (what ``thinnka plan`` shows).
    entry_points: tuple[tuple[Mode, str], ...]
    # Its argv after `accelerate launch --config_file ...` ({openr1_dir}, {mode} filled in).
    entry_argv: tuple[str, ...]
    # thinnka's launcher around the entry point; ``always_wrapped`` stacks always use it,
    # the others only when the entry point alone cannot do what the run needs.
    launcher: str
    always_wrapped: bool
    default_beta: float  # the KL coefficient its TRL defaults to (0.18: 0.04; 1.x: 0.0)
    rewards: tuple[str, ...]  # the reward registry's names
    # The registry's rewards for the <think>/<answer> layout, None if it has none; and the
    # accuracy reward used with any other tags.
    builtin_tag_rewards: tuple[str, ...] | None
    accuracy_reward: str
    gpus: GpuSupport
    # Recipe features the stack's own scripts have (else thinnka's launcher provides them).
    recipe_system_prompt: bool  # system_prompt / max_prompt_length / chat_template keys
    recipe_dataset_mixture: bool  # --dataset-fraction as a weighted dataset_mixture
    vllm_max_model_length: bool  # colocated engine sized by vllm_max_model_length
    serve_remote_code: bool  # its `trl vllm-serve` takes --trust_remote_code
    flash_attn_kernels: bool  # flash_attention_2 from the Hub kernel (transformers[kernels])
    # Said when 4-bit loading drops ZeRO-3 to ZeRO-2 on a stack where that was not proven.
    quantized_zero3_note: str = ""

    def entry_point(self, mode: Mode) -> str:
        return dict(self.entry_points)[mode]

    @property
    def label(self) -> str:
        """The model card's "Trainer": "Open R1 (TRL 0.18.0)", "TRL 1.13.0"."""
        if self.display == "TRL":
            return f"TRL {self.trl_version}"
        return f"{self.display} (TRL {self.trl_version})"


@lru_cache(maxsize=1)
def stacks() -> dict[str, TrainerStack]:
    """Both stacks by name. Built on first use: the pins live in rendering/versions.py."""
    from thinnka.planning.versions import OPENR1_STACK, TRL_PIN

    openr1 = TrainerStack(
        name="openr1",
        display="Open R1",
        trl_version=OPENR1_STACK["trl"],
        template="openr1",
        setup_script="setup_openr1.sh",
        entry_points=(("grpo", "open_r1.grpo"), ("sft", "open_r1.sft")),
        entry_argv=("{openr1_dir}/src/open_r1/{mode}.py",),
        launcher="thinnka_openr1.py",
        always_wrapped=False,
        default_beta=0.04,
        rewards=_OPENR1_REWARDS,
        builtin_tag_rewards=("accuracy", "format", "tag_count"),
        accuracy_reward="accuracy",
        gpus=GpuSupport(
            stack="openr1",
            architectures=frozenset({"ampere", "ada", "hopper"}),
            why=(
                f"Open R1 pins torch {OPENR1_STACK['torch']}, whose CUDA 12.4 wheels have no "
                "Blackwell kernels (--trainer trl can use it)"
            ),
        ),
        recipe_system_prompt=True,
        recipe_dataset_mixture=True,
        vllm_max_model_length=False,
        serve_remote_code=False,
        flash_attn_kernels=False,
    )
    trl = TrainerStack(
        name="trl",
        display="TRL",
        trl_version=TRL_PIN,
        template="trl",
        setup_script="setup_trl.sh",
        entry_points=(("grpo", "trl grpo"), ("sft", "trl sft")),
        entry_argv=("-m", "trl.scripts.{mode}"),  # the module `trl grpo` / `trl sft` run
        launcher="thinnka_trl_train.py",
        always_wrapped=True,
        default_beta=0.0,
        rewards=_TRL_REWARDS,
        builtin_tag_rewards=None,
        accuracy_reward="thinnka_rewards.accuracy_reward",
        gpus=GpuSupport(
            stack="trl",
            architectures=frozenset({"ampere", "ada", "hopper", "blackwell"}),
            why="its torch comes from the image (CUDA 12.8: Ampere to Blackwell)",
        ),
        recipe_system_prompt=False,
        recipe_dataset_mixture=False,
        vllm_max_model_length=True,
        serve_remote_code=True,
        flash_attn_kernels=True,
        quantized_zero3_note=" (The TRL stack keeps the rule proven on Open R1's pins.)",
    )
    return {"openr1": openr1, "trl": trl}


def stack_for(name: str) -> TrainerStack:
    known = stacks()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(f"--trainer must be one of {', '.join(known)}, got {name!r}.") from None

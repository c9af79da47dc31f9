"""thinnka's GPU memory estimate next to measured peaks; a smoke run of its training script.

Calibration (the default): for each Qwen2 size (the published configs, random bf16
weights, built and saved locally), each method (full fine-tuning, LoRA, QLoRA), sequence
length and batch, it renders thinnka's TRL SFT recipe, takes thinnka's estimate for it
(the figure `thinnka plan` rents by), then trains a few optimizer steps with TRL's
SFTTrainer configured by that very recipe, as recipes/scripts/thinnka_trl_train.py does
on a pod, and records torch.cuda.max_memory_reserved()/max_memory_allocated(). Points the
estimate says cannot fit are skipped (unless --try-unfit), an out-of-memory point is
recorded as `oom`, and no point starts once --budget-s is spent. The JSON file is
rewritten after every point, so a run cut short keeps what it measured.

--smoke: thinnka_trl_train.py itself, under `accelerate launch` with the files thinnka
renders for a pod, for a few steps of SFT (LoRA on a bf16 base), GRPO without vLLM and,
where vLLM imports, GRPO with vLLM colocate, on a random 0.5B-sized model and a tiny data
set saved locally.

Nothing is downloaded and no host is contacted (the trainers run with the Hub offline).
--device cpu runs the same code (the CPU test does, at tiny sizes); memory is then
recorded as null with the reason. bench/README.md says how to run it on a CUDA machine.
Run: python bench/gpu_calibration.py --device cuda --budget-s 480 --output calibration.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common  # first: puts this checkout on sys.path before an installed thinnka
import yaml
from _calibration_assets import (
    QWEN2_SIZES,
    build_tokenizer,
    parameter_count,
    qwen2_config,
    save_random_model,
    write_grpo_dataset,
    write_sft_dataset,
)

from thinnka.options import RunOptions, validate
from thinnka.planning.vram import GB, MemoryEstimate, ModelFacts, estimate, shape_for

if TYPE_CHECKING:
    from thinnka.planning.training import TrainingPlan

METHODS = ("full", "lora", "qlora")
# The --set that makes thinnka's SFT plan train each method on one GPU without DeepSpeed
# (SFT defaults to QLoRA; the README's "Training modes" table names the other two).
METHOD_SETS: dict[str, tuple[tuple[str, str], ...]] = {
    "full": (("use_peft", "false"),),
    "lora": (("load_in_4bit", "false"),),
    "qlora": (),
}
# Recipe keys worth keeping next to each point: what shapes its memory.
RECIPE_KEYS = (
    "dtype", "attn_implementation", "bf16", "gradient_checkpointing",
    "gradient_checkpointing_kwargs", "use_peft", "load_in_4bit", "use_bnb_nested_quant",
    "bnb_4bit_quant_type", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
    "learning_rate", "max_length", "per_device_train_batch_size",
    "gradient_accumulation_steps", "use_liger_kernel",
)  # fmt: skip
HUB_ID = "thinnka-bench/calibration"  # where a pod would push: never contacted here
TAIL = 4000  # characters of a failed command's output kept in the JSON


# --------------------------------------------------------------------------- thinnka


@dataclass(frozen=True)
class Rendering:
    """What thinnka renders for one run: the recipe, the run folder's files, the command."""

    recipe: dict[str, Any]
    files: dict[str, str]
    command: list[str]
    plan: TrainingPlan


def render_run(options: RunOptions, run_dir: Path) -> Rendering:
    """thinnka's renderer, as `thinnka plan` and a run call it once the Hub has answered.

    `thinnka plan` itself cannot run here: it asks the Hub about the model and Runpod for
    its catalog, and neither is reachable from a machine without network. The model facts and
    pod paths are planning records; ``render`` writes the recipe from the run's plan.
    """
    import transformers

    from thinnka.planning.facts import ModelContext, RemotePaths
    from thinnka.rendering import render

    model = ModelContext(
        hub_model_id=HUB_ID,
        has_chat_template=True,
        transformers_version=transformers.__version__,
        model_type="qwen2",
    )
    paths = RemotePaths(
        run_dir=str(run_dir),
        output_dir=str(run_dir / "out"),
        venv=sys.prefix,
        hf_home=str(run_dir / "hf"),
    )
    rendered = render(options, model, paths)
    return Rendering(rendered.recipe, rendered.files, rendered.command, rendered.training)


def thinnka_estimate(plan: TrainingPlan, parameters: int, config: dict[str, Any]) -> MemoryEstimate:
    """thinnka's estimate for ``plan``, from the facts the Hub would publish for the model:
    the safetensors parameter count (all bf16) and config.json (planner.memory_estimate)."""
    facts = ModelFacts.from_hub(parameters, {"BF16": parameters}, [], config)
    return estimate(facts, shape_for(plan))


def estimate_json(need: MemoryEstimate, memory_gb: float | None) -> dict[str, Any]:
    return {
        "required_gb": need.required_gb(),  # what `thinnka plan` filters GPUs by
        "total_bytes": need.total,
        # max_memory_reserved() cannot see the CUDA context, which the estimate counts.
        "total_without_cuda_overhead_bytes": need.total - need.cuda_overhead,
        "breakdown_bytes": {label: round(gb * GB) for label, gb in need.breakdown("GB")},
        "fits_device": None if memory_gb is None else need.fits(memory_gb),
    }


# --------------------------------------------------------------------------- machine


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _importable(name: str) -> tuple[bool, str | None]:
    """Whether ``import name`` works here, and why not (bitsandbytes can be installed and
    still fail to import: no CUDA library, no CPU backend)."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # any failure means "cannot use it", which is what is recorded
        return False, f"{type(exc).__name__}: {exc}"
    return True, None


def vllm_importable(timeout_s: float = 180) -> tuple[bool, str | None]:
    """``import vllm`` in a child process: it is slow and initialises CUDA state that this
    process should not carry into measurements."""
    if _version("vllm") is None:
        return False, "not installed"
    try:
        done = subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True,
                              text=True, timeout=timeout_s)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"`import vllm` took over {timeout_s:.0f} s"
    if done.returncode != 0:
        return False, (done.stderr.strip().splitlines() or ["import failed"])[-1]
    return True, None


def machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"type": device, "host_cpus": os.cpu_count()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            name=props.name,
            total_memory_bytes=props.total_memory,
            capability=f"{props.major}.{props.minor}",
            count=torch.cuda.device_count(),
            cuda=torch.version.cuda,
        )
    else:
        info["total_memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return info


def versions() -> dict[str, Any]:
    import torch

    names = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes",
             "vllm", "thinnka")  # fmt: skip
    found: dict[str, Any] = {name: _version(name) for name in names}
    found["torch"] = torch.__version__  # the local build tag (+cu128, +cpu) included
    found["python"] = platform.python_version()
    found["torch_cuda"] = torch.version.cuda
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_common.ROOT,
                              capture_output=True, text=True, timeout=10)  # fmt: skip
        found["thinnka_commit"] = head.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        found["thinnka_commit"] = None
    return found


class Report:
    """The JSON file, rewritten whole (via a temporary file) after every change."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.started = seconds, time.monotonic()

    @property
    def used(self) -> float:
        return time.monotonic() - self.started

    @property
    def left(self) -> float:
        return self.seconds - self.used


def _free_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _tail(text: str) -> str:
    return text[-TAIL:]


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Point:
    size: str
    method: str
    seq_len: int
    batch: int

    @property
    def id(self) -> str:
        return f"{self.size}/{self.method}/{self.seq_len}/{self.batch}"

    def options(self) -> RunOptions:
        """The `thinnka plan --trainer trl --sft` options of this point: SFT's sequence is
        max_length; one accumulation step (the peak of a step does not depend on it)."""
        return validate(
            RunOptions(
                repo_id=f"thinnka-bench/qwen2-{self.size}-random",
                hub_model_id=HUB_ID,
                trainer="trl",
                sft=True,
                per_device_train_batch=self.batch,
                gradient_accumulation_steps=1,
                overrides=(("max_length", str(self.seq_len)), *METHOD_SETS[self.method]),
            )
        )


class Models:
    """One saved random model per size, made on first use (in ``folder``)."""

    def __init__(self, folder: Path, device: str) -> None:
        self.folder, self.device = folder, device
        self.tokenizer = build_tokenizer()
        self.saved: dict[str, Path] = {}
        self.counts: dict[str, int] = {}

    def config(self, size: str) -> Any:
        return qwen2_config(size, self.tokenizer)

    def parameters(self, size: str) -> int:
        if size not in self.counts:
            self.counts[size] = parameter_count(self.config(size))
        return self.counts[size]

    def path(self, size: str) -> Path:
        if size not in self.saved:
            out = self.folder / f"qwen2-{size}"
            save_random_model(out, self.config(size), self.tokenizer, device=self.device)
            self.saved[size] = out
        return self.saved[size]

    def drop(self, size: str) -> None:
        """Delete a size's files once its points are done (7B alone is 15 GB of disk)."""
        if size in self.saved:
            shutil.rmtree(self.saved.pop(size), ignore_errors=True)


def _oom_callback() -> Any:
    """A TrainerCallback raising CUDA's out-of-memory error at the first step: how the CPU
    test proves the `oom` path, which a CPU cannot reach by itself (--inject-oom)."""
    import torch
    from transformers import TrainerCallback

    class InjectedOom(TrainerCallback):
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by --inject-oom)")

    return InjectedOom()


def train_steps(
    recipe: dict[str, Any],
    model_dir: Path,
    output_dir: Path,
    *,
    device: str,
    steps: int,
    vocab: int,
    inject_oom: bool,
) -> dict[str, Any]:
    """A few optimizer steps of TRL's SFTTrainer configured by ``recipe`` (the rendered
    recipe.yaml), built as thinnka_trl_train.py builds it, on random token rows of exactly
    max_length tokens (no padding: the batch is as long as the recipe allows)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTTrainer, get_peft_config, get_quantization_config
    from trl.scripts.sft import make_parser

    seq, batch = int(recipe["max_length"]), int(recipe["per_device_train_batch_size"])
    config = {k: v for k, v in recipe.items() if k not in ("dataset_name", "hub_model_id")}
    # Only what a bench run must not do differently: no pushing, saving or tracking, a
    # fixed number of steps, this machine's device.
    config.update(
        model_name_or_path=str(model_dir), output_dir=str(output_dir), max_steps=steps,
        save_strategy="no", push_to_hub=False, report_to="none", logging_steps=1,
        log_level="warning", disable_tqdm=True, use_cpu=device == "cpu",
    )  # fmt: skip
    _, args, model_args, _ = make_parser().parse_dict(config)
    args.model_init_kwargs = {  # as thinnka_trl_train.py sets them
        "revision": model_args.model_revision,
        "trust_remote_code": args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(3, vocab, (batch * steps, seq), generator=generator)
    trainer = SFTTrainer(
        model=str(model_dir),
        args=args,
        train_dataset=Dataset.from_dict({"input_ids": rows.tolist()}),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
        callbacks=[_oom_callback()] if inject_oom else None,
    )
    try:
        result = trainer.train()
        if device == "cuda":
            torch.cuda.synchronize()
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        model = trainer.model
        assert model is not None
        trainable = sum(int(p.numel()) for p in model.parameters() if p.requires_grad)
        return {
            "steps": trainer.state.global_step,
            "train_runtime_s": round(float(result.metrics["train_runtime"]), 3),
            "losses": [round(float(x), 4) for x in losses],
            "trainable_parameters": int(trainable),
            "base_loaded_in_4bit": bool(getattr(model, "is_loaded_in_4bit", False)),
            # device_map="auto" (TRL's default on a GPU) would offload what does not fit to
            # the CPU instead of failing: such a point measured less than it needs.
            "placed_on": sorted(
                {str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()}
            ),
            "optim": str(args.optim.value if hasattr(args.optim, "value") else args.optim),
            "loss_type": getattr(args, "loss_type", None),
        }
    finally:
        # The trainer holds the model, the optimizer states and the accelerator's
        # references: all of it must go before the next point measures from zero.
        trainer.accelerator.free_memory()
        del trainer


def measure_point(
    point: Point,
    models: Models,
    work: Path,
    *,
    device: str,
    steps: int,
    memory_gb: float | None,
    try_unfit: bool,
    inject_oom: bool,
    bnb: tuple[bool, str | None],
    budget: Budget,
) -> dict[str, Any]:
    """One point's record: thinnka's estimate, then (unless skipped) the measured peaks."""
    import torch

    row: dict[str, Any] = {"id": point.id, **dataclasses.asdict(point), "status": None,
                           "reason": None}  # fmt: skip
    config = models.config(point.size)
    parameters = models.parameters(point.size)
    run_dir = work / "runs" / f"{point.size}-{point.method}-{point.seq_len}-{point.batch}"
    rendering = render_run(point.options(), run_dir)
    plan = rendering.plan
    if plan.method != point.method or plan.zero_stage is not None or plan.processes != 1:
        raise SystemExit(f"{point}: thinnka now plans {plan.summary!r}; update METHOD_SETS")
    need = thinnka_estimate(plan, parameters, config.to_dict())
    row.update(
        parameters=parameters,
        plan=plan.summary,
        recipe={k: rendering.recipe[k] for k in RECIPE_KEYS if k in rendering.recipe},
        estimate=estimate_json(need, memory_gb),
        measured=None,
    )
    if point.method == "qlora" and not bnb[0]:
        return {**row, "status": "skipped", "reason": f"bitsandbytes does not import: {bnb[1]}"}
    if memory_gb is not None and not need.fits(memory_gb) and not try_unfit:
        reason = (f"thinnka's estimate needs {need.required_gb()} GB; the device has "
                  f"{memory_gb:.1f} GB")  # fmt: skip
        return {**row, "status": "skipped", "reason": reason}
    if budget.left <= 0:
        return {
            **row,
            "status": "skipped",
            "reason": f"time budget of {budget.seconds:.0f} s spent",
        }

    model_dir = models.path(point.size)
    _free_memory(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        start_allocated = torch.cuda.memory_allocated()
    started = time.monotonic()
    try:
        trained = train_steps(
            rendering.recipe, model_dir, run_dir / "out", device=device, steps=steps,
            vocab=config.vocab_size, inject_oom=inject_oom,
        )  # fmt: skip
    except torch.cuda.OutOfMemoryError as exc:
        # Only the message leaves this block: the exception's frames hold the tensors.
        row.update(status="oom", reason=str(exc).splitlines()[0][:500])
    except Exception as exc:  # recorded, and the next point still runs (one GPU call)
        row.update(status="error", reason=f"{type(exc).__name__}: {str(exc)[:TAIL]}")
    else:
        row.update(status="ok", **trained)
    row["elapsed_s"] = round(time.monotonic() - started, 2)
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        reserved = torch.cuda.max_memory_reserved()
        # In use on the device but not by torch's allocator: the CUDA context, cuBLAS and
        # NCCL state, other processes; what the estimate's 2 GB "CUDA context" line is for.
        outside = (total - free) - torch.cuda.memory_reserved()
        row["measured"] = {
            "max_memory_reserved": reserved,
            "max_memory_allocated": torch.cuda.max_memory_allocated(),
            "start_allocated": start_allocated,  # left over from earlier points: 0 if clean
            "outside_torch_after": outside,
            "reserved_over_estimate_without_overhead": round(
                reserved / (need.total - need.cuda_overhead), 3
            ),
            # Above 1: the estimate (before its 10 % margin) was too low for this point.
            "peak_over_estimate": round((reserved + outside) / need.total, 3),
        }
    else:
        row["measured"] = {
            "max_memory_reserved": None,
            "max_memory_allocated": None,
            "reason": "CPU: torch.cuda's memory counters measure CUDA memory only",
        }
    _free_memory(device)
    return row


def calibrate(opts: argparse.Namespace, report: Report, work: Path, budget: Budget) -> None:
    device: str = opts.device
    bnb = _importable("bitsandbytes")
    report.data["bitsandbytes"] = {"importable": bnb[0], "error": bnb[1]}
    total = report.data["device"]["total_memory_bytes"]
    memory_gb = opts.memory_gb if opts.memory_gb is not None else total / GB
    report.data["settings"]["memory_gb_for_fit"] = round(memory_gb, 2)
    models = Models(work / "models", device)
    points: list[dict[str, Any]] = report.data["points"]
    for size in opts.sizes:  # smallest first: the budget runs out on the big ones
        for method in opts.modes:
            for seq_len in opts.seq_lens:
                for batch in opts.batches:
                    point = Point(size, method, seq_len, batch)
                    row = measure_point(
                        point, models, work, device=device, steps=opts.steps,
                        memory_gb=memory_gb, try_unfit=opts.try_unfit,
                        inject_oom=point.id in opts.inject_oom, bnb=bnb, budget=budget,
                    )  # fmt: skip
                    points.append(row)
                    report.data["elapsed_s"] = round(budget.used, 1)
                    report.write()
                    print(_point_line(row), flush=True)
        models.drop(size)


def _point_line(row: dict[str, Any]) -> str:
    head = f"{row['size']:>5} {row['method']:<5} seq {row['seq_len']:>5} batch {row['batch']}"
    need = row["estimate"]["total_bytes"] / GB
    measured = (row.get("measured") or {}).get("max_memory_reserved")
    got = f"reserved {measured / GB:.2f} GB" if measured is not None else ""
    why = f" ({row['reason']})" if row["reason"] else ""
    return f"{head}: {row['status']}, estimate {need:.2f} GB {got}{why}"


# --------------------------------------------------------------------------- smoke


@dataclass(frozen=True)
class SmokeRun:
    name: str
    grpo: bool
    vllm: bool
    sets: tuple[tuple[str, str], ...] = ()


SMOKE_RUNS = (
    # The SFT: LoRA on a bf16 base (SFT's default is QLoRA).
    SmokeRun("sft_lora_bf16", grpo=False, vllm=False, sets=(("load_in_4bit", "false"),)),
    # GRPO --no-vllm: QLoRA where bitsandbytes imports (thinnka's plan for it).
    SmokeRun("grpo_no_vllm", grpo=True, vllm=False),
    SmokeRun("grpo_vllm_colocate", grpo=True, vllm=True),
)
# A CPU has no bf16 worth training in and no vLLM: the switches of the CPU training tests
# (tests/rendering/test_train.py). 4-bit loading works there (bitsandbytes' CPU backend).
CPU_SETS = (("use_cpu", "true"), ("bf16", "false"), ("torch_dtype", "float32"))


def smoke_options(run: SmokeRun, *, device: str, steps: int, bnb: bool) -> RunOptions:
    sets: list[tuple[str, str]] = [
        ("max_steps", str(steps)), ("logging_steps", "1"), ("save_strategy", "no"),
        ("push_to_hub", "false"), *run.sets,
    ]  # fmt: skip
    if run.grpo:
        sets.append(("log_completions", "false"))  # rich tables: noise in the output tail
        if not bnb:
            sets.append(("load_in_4bit", "false"))
    if device == "cpu":
        sets += CPU_SETS
    return validate(
        RunOptions(
            repo_id="thinnka-bench/qwen2-random",
            hub_model_id=HUB_ID,
            trainer="trl",
            sft=not run.grpo,
            use_vllm=run.vllm if run.grpo else None,
            per_device_train_batch=2,
            gradient_accumulation_steps=1,
            num_generations=2,
            max_prompt_length=64,
            max_completion_length=32 if device == "cuda" else 16,
            overrides=tuple(sets),
        )
    )


def _offline_env(hf_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "WANDB"))}
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(hf_home), WANDB_MODE="disabled", PYTHONUNBUFFERED="1",
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",  # its accelerate
    )  # fmt: skip
    env.pop("TRANSFORMERS_VERBOSITY", None)  # the trainer's own output is what is kept
    return env


def smoke_one(
    run: SmokeRun,
    model_dir: Path,
    data: dict[str, Path],
    work: Path,
    *,
    device: str,
    steps: int,
    bnb: bool,
    vllm: tuple[bool, str | None],
    budget: Budget,
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": run.name, "status": None, "reason": None}
    if run.vllm and device != "cuda":
        return {**row, "status": "skipped", "reason": "vLLM needs a CUDA device"}
    if run.vllm and not vllm[0]:
        return {**row, "status": "skipped", "reason": f"vllm not importable: {vllm[1]}"}
    if budget.left <= 30:
        return {
            **row,
            "status": "skipped",
            "reason": f"time budget of {budget.seconds:.0f} s spent",
        }
    run_dir = work / "runs" / run.name
    rendering = render_run(smoke_options(run, device=device, steps=steps, bnb=bnb), run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendering.files.items():
        (run_dir / name).write_text(text)
    # Rendered for Hub ids (thinnka refuses local folders as --set values); pointed at
    # the local model and data set here, as a pod's recipe would point at downloads.
    recipe = dict(rendering.recipe, model_name_or_path=str(model_dir),
                  dataset_name=str(data["grpo" if run.grpo else "sft"]))  # fmt: skip
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    row.update(plan=rendering.plan.summary, command=rendering.command,
               recipe={k: v for k, v in recipe.items() if k not in ("output_dir",)})  # fmt: skip
    started = time.monotonic()
    returncode, output = _run_group(
        rendering.command, run_dir, _offline_env(work / "hf"), max(30.0, budget.left)
    )
    if returncode is None:
        row.update(status="failed", reason="time budget spent while training",
                   output_tail=_tail(output))  # fmt: skip
        return row
    out = run_dir / "out"
    saved = (out / "adapter_model.safetensors").exists() or (out / "model.safetensors").exists()
    row.update(
        elapsed_s=round(time.monotonic() - started, 1),
        returncode=returncode,
        saved_model=saved,
        said_saved="thinnka: model saved to" in output,
        train_metrics=_train_metrics(output),
    )
    ok = returncode == 0 and saved
    # A failure keeps a long tail (the traceback); a success its last lines.
    row.update(status="ok" if ok else "failed", reason=None if ok else "see output_tail",
               output_tail=output[-(TAIL if not ok else 1000):])  # fmt: skip
    return row


def _run_group(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[int | None, str]:
    """Exit code (None: timed out) and output of ``argv`` in a process group of its own:
    `accelerate launch` runs the training in a child, which a timeout must end too (it
    would hold the GPU while the next run starts)."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return None, output
    return proc.returncode, output


def _train_metrics(output: str) -> dict[str, Any] | None:
    """The trainer's closing metrics line ({'train_runtime': ..., 'train_loss': ...})."""
    import ast

    for line in reversed(output.splitlines()):
        start = line.find("{'train_runtime'")
        if start >= 0:
            try:
                value = ast.literal_eval(line[start : line.rindex("}") + 1])
            except (ValueError, SyntaxError):
                return None
            # transformers 5 prints the numbers as formatted strings.
            return {k: _number(v) for k, v in value.items()} if isinstance(value, dict) else None
    return None


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def smoke(opts: argparse.Namespace, report: Report, work: Path, budget: Budget) -> None:
    bnb = _importable("bitsandbytes")
    vllm = vllm_importable() if opts.device == "cuda" else (False, "no CUDA device")
    report.data["bitsandbytes"] = {"importable": bnb[0], "error": bnb[1]}
    report.data["vllm"] = {"importable": vllm[0], "error": vllm[1]}
    tokenizer = build_tokenizer()
    size = opts.smoke_size
    model_dir = work / "models" / f"qwen2-{size}"
    # Built on the CPU: a 0.5B model takes seconds, and the trainers then find the GPU empty.
    save_random_model(model_dir, qwen2_config(size, tokenizer), tokenizer, device="cpu")
    data = {"sft": write_sft_dataset(work / "data" / "sft"),
            "grpo": write_grpo_dataset(work / "data" / "grpo")}  # fmt: skip
    report.data["smoke_model"] = {"size": size, "parameters": parameter_count(qwen2_config(size))}
    runs: list[dict[str, Any]] = report.data["runs"]
    for run in SMOKE_RUNS:
        row = smoke_one(run, model_dir, data, work, device=opts.device, steps=opts.steps,
                        bnb=bnb[0], vllm=vllm, budget=budget)  # fmt: skip
        runs.append(row)
        report.data["elapsed_s"] = round(budget.used, 1)
        report.write()
        print(f"{row['name']}: {row['status']}" + (f" ({row['reason']})" if row["reason"] else ""),
              flush=True)  # fmt: skip


# --------------------------------------------------------------------------- main


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(item.strip()) for item in text.split(",") if item.strip()]

    return parse


def _choices(allowed: tuple[str, ...] | list[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = _csv(str)(text)
        bad = [item for item in items if item not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {list(allowed)}")
        return items

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    sizes = list(QWEN2_SIZES)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--output", type=Path, default=Path("calibration.json"))
    parser.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="start no point (or smoke run) after this many seconds",
    )
    parser.add_argument(
        "--sizes",
        type=_choices(sizes),
        default=["0.5b", "1.5b", "7b"],
        help=f"comma-separated, of {sizes}",
    )
    parser.add_argument(
        "--modes",
        type=_choices(METHODS),
        default=list(METHODS),
        help="comma-separated methods: full, lora, qlora",
    )
    parser.add_argument("--seq-lens", type=_csv(int), default=[512, 2048])
    parser.add_argument("--batches", type=_csv(int), default=[1, 4])
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per point / run")
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=None,
        help="device memory the fit check assumes (default: the device's)",
    )
    parser.add_argument(
        "--try-unfit",
        action="store_true",
        help="also run points thinnka's estimate says cannot fit",
    )
    parser.add_argument(
        "--inject-oom",
        type=_csv(str),
        default=[],
        metavar="IDS",
        help="raise CUDA's OOM error at the first step of these points "
        "(SIZE/METHOD/SEQ/BATCH, comma-separated): the CPU test's oom",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep models, data and run folders here (default: a temp folder)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run thinnka_trl_train.py (SFT, GRPO, GRPO + vLLM) instead",
    )
    parser.add_argument("--smoke-size", choices=sizes, default="0.5b")
    opts = parser.parse_args(argv)
    if opts.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device (use --device cpu)")
    return opts


@contextmanager
def work_folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    folder = Path(tempfile.mkdtemp(prefix="thinnka-gpu-calibration-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Set before transformers and datasets are imported: nothing here may reach the Hub, and
# their progress bars would bury the one line printed per point.
QUIET_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "WANDB_MODE": "disabled",
}


def main(argv: list[str] | None = None) -> None:
    os.environ.update(QUIET_OFFLINE)
    opts = parse_args(argv)
    budget = Budget(opts.budget_s)
    settings = {k: v for k, v in vars(opts).items() if k not in ("output", "work_dir", "smoke")}
    data: dict[str, Any] = {
        "kind": "smoke" if opts.smoke else "calibration",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": machine(opts.device),
        "versions": versions(),
        "settings": settings,
        "elapsed_s": 0.0,
        **({"runs": []} if opts.smoke else {"points": []}),
    }
    report = Report(opts.output, data)
    with work_folder(opts.work_dir) as work:
        (smoke if opts.smoke else calibrate)(opts, report, work, budget)
    report.data["elapsed_s"] = round(budget.used, 1)
    report.data["finished"] = True
    report.write()
    print(f"wrote {opts.output} in {budget.used:.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""The remote scripts in recipes/scripts, run for real against stand-ins for what only a pod
has (pip, uv, git, a vLLM server, Open R1): the commands they issue, their quoting, their
idempotency markers, their failure messages."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from thinnka.options import RunOptions, validate
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.rendering import render, script_text, write_env_file

SCRIPTS = Path(__file__).resolve().parents[2] / "recipes" / "scripts"
pytestmark = pytest.mark.timeout(120)


def _stub(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _setup_env(trainer: str, venv: Path, **options: Any) -> dict[str, str]:
    o = validate(RunOptions(repo_id="Qwen/Qwen2.5-0.5B", trainer=trainer, **options))
    paths = RemotePaths(
        run_dir="/r",
        output_dir="/o",
        venv=str(venv),
        hf_home="/h",
        openr1_dir=str(venv.parent / "open-r1"),
    )
    return render(o, ModelContext(hub_model_id="me/x", has_chat_template=True), paths).setup_env


def _run(
    script: str, env_file: Path, extra_env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VENV", "TRAINER")}
    # These check what the scripts ask pip for (the pip override, and the fallback where
    # uv cannot be had); uv's path: tests/pod/test_setup_uv.py and tests/e2e/test_layouts.py.
    env["THINNKA_POD_INSTALLER"] = "pip"
    env.update(extra_env or {})
    return subprocess.run(
        ["bash", str(SCRIPTS / script), str(env_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------ setup_trl.sh
def _fake_venv(venv: Path, log: Path) -> None:
    # Logs every call but the "has it pip?" and "which torch?" probes (it has none);
    # swallows the import-check program on stdin.
    _stub(
        venv / "bin" / "python",
        f"""\
        if [ "$*" = "-m pip --version" ]; then exit 0; fi
        if [ "${{1##*/}}" = "probe_python.py" ]; then exit 0; fi
        printf '%s\\n' "$*" >> {log}
        if [ "${{1##*/}}" = "check_stack.py" ]; then echo "thinnka: trl ready"; fi
        exit 0
    """,
    )


def test_setup_trl_installs_in_order_and_is_idempotent(tmp_path: Path) -> None:
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    _fake_venv(venv, log)
    values = _setup_env(
        "trl", venv, custom_dependencies=("einops>=0.7", "rich[jupyter]"), use_vllm=False
    )
    values.update(
        TORCH_SPEC="torch==2.13.0+cpu", TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"
    )
    env_file = tmp_path / "setup.env"
    env_file.write_text(write_env_file(values))

    first = _run("setup_trl.sh", env_file)
    assert first.returncode == 0, first.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == (
        "-m pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu"
    )
    main = calls[1].split()
    assert main[:4] == ["-m", "pip", "install", "-c"]  # torch held as a constraint
    assert main[5:] == [
        "trl==1.13.0",
        "accelerate==1.15.0",
        "datasets==5.0.1",
        "peft==0.21.0",
        "bitsandbytes>=0.43.2",  # GRPO without vLLM trains QLoRA
        "math-verify>=0.5.2",
        "transformers==5.17.0",
    ]
    assert calls[2].endswith("einops>=0.7 rich[jupyter]")
    assert calls[3].endswith("/check_stack.py --import")  # the import check
    assert list((venv / ".thinnka-setup").iterdir())

    log.write_text("")
    again = _run("setup_trl.sh", env_file)
    assert again.returncode == 0 and "skipping setup" in again.stdout
    assert log.read_text() == ""

    values["CUSTOM_DEPS"] = "einops>=0.8"
    env_file.write_text(write_env_file(values))
    changed = _run("setup_trl.sh", env_file)
    assert changed.returncode == 0 and "skipping" not in changed.stdout
    assert "einops>=0.8" in log.read_text()
    assert len(list((venv / ".thinnka-setup").iterdir())) == 1


def test_setup_trl_with_vllm_installs_it_with_the_stack(tmp_path: Path) -> None:
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    _fake_venv(venv, log)
    env_file = tmp_path / "setup.env"
    env_file.write_text(write_env_file(_setup_env("trl", venv, gpu_count=2)))
    assert _run("setup_trl.sh", env_file).returncode == 0
    main = log.read_text().splitlines()[0].split()
    assert main[:3] == ["-m", "pip", "install"]  # no TORCH_SPEC: nothing held
    assert main[3] == "vllm>=0.19.1,<=0.28.0" and "deepspeed>=0.18.6" in main


@pytest.mark.timeout(300)
def test_setup_trl_reuses_a_prebuilt_venv_offline(tmp_path: Path) -> None:
    """A venv that already holds every pin: pip has nothing to fetch (no index at all).

    The venv is a pod venv layered over the test environment (``make_pod_venv``), never the
    test environment itself: setup writes its markers into the venv, and other tests (other
    pytest-xdist workers) use the test environment meanwhile."""
    from tests.plugins.thinnka_world import make_pod_venv

    venv = make_pod_venv(tmp_path / "venv")
    values = _setup_env("trl", venv, sft=True)
    values["STACK_PACKAGES"] = "trl==1.13.0\naccelerate==1.15.0\ndatasets==5.0.1\npeft==0.21.0"
    values["NEED_BNB"] = "0"
    env_file = tmp_path / "setup.env"
    env_file.write_text(write_env_file(values))
    # pip's start and checks are slow on a busy machine: a hang guard, not a measure.
    extra = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    result = _run("setup_trl.sh", env_file, extra, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trl 1.13.0, transformers 5.17.0 ready" in result.stdout
    assert list((venv / ".thinnka-setup").iterdir()), "setup left no marker in the venv"


# ------------------------------------------------------------------ the image's python
def _probe_python(python: str, need: str) -> subprocess.CompletedProcess[str]:
    """setup_common.sh's probe of ``python`` (as THINNKA_PYTHON) for a stack needing ``need``;
    on success, what it found, as ``declare -p`` lines."""
    script = (
        f'. "$(dirname "$0")/setup_common.sh"; thinnka_load_env; thinnka_probe_python {need}'
        " && declare -p image_python image_version image_venv image_torch image_torch_dir"
    )
    env = {**os.environ, "THINNKA_PYTHON": python}
    return subprocess.run(
        ["bash", "-c", script, str(SCRIPTS / "setup_trl.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_probe_reports_the_python_that_runs_and_its_torch() -> None:
    """Asked of the test environment's python (a venv with torch): that venv, as itself."""
    result = _probe_python(sys.executable, "3.10")
    assert result.returncode == 0, result.stderr
    torch = importlib.util.find_spec("torch")
    assert torch is not None and torch.submodule_search_locations
    [folder] = torch.submodule_search_locations

    said = result.stdout
    assert f'image_python="{sys.executable}"' in said
    assert f'image_venv="{int(sys.prefix != sys.base_prefix)}"' in said
    assert f'image_torch="{importlib.metadata.version("torch")}"' in said
    assert f'image_torch_dir="{Path(folder).parent}"' in said


def test_the_probe_refuses_a_python_too_old_for_the_stack_by_name() -> None:
    version = ".".join(map(str, sys.version_info[:3]))
    result = _probe_python(sys.executable, "99.0")
    assert result.returncode == 1
    assert f"is {sys.executable} (Python {version}); the trl stack needs Python 99.0" in (
        result.stderr
    )


def test_the_probe_refuses_a_missing_python_by_name() -> None:
    result = _probe_python("python3-that-is-not-there", "3.10")
    assert result.returncode == 1
    assert "the image has no python3-that-is-not-there on its PATH" in result.stderr


def test_setup_trl_asks_for_the_python_its_stack_requires() -> None:
    """The floor setup_trl.sh refuses below is the one trl and transformers declare."""
    text = (SCRIPTS / "setup_trl.sh").read_text()
    [need] = re.findall(r"^thinnka_probe_python (\S+)", text, re.MULTILINE)
    for name in ("trl", "transformers"):
        floor = importlib.metadata.metadata(name)["Requires-Python"].removeprefix(">=")
        assert floor.split(".")[:2] == need.split("."), (name, floor)


# ------------------------------------------------------------------ setup_openr1.sh
def test_setup_openr1_clones_pins_and_installs_in_order(tmp_path: Path) -> None:
    venv, log, bin_dir = tmp_path / "venv", tmp_path / "calls.log", tmp_path / "bin"
    for tool in ("curl", "gcc", "tar"):
        _stub(bin_dir / tool, "exit 0\n")
    _stub(
        bin_dir / "git",
        f"""\
        printf 'git %s\\n' "$*" >> {log}
        if [ "$1" = "clone" ]; then mkdir -p "$4/src/open_r1"; fi
        exit 0
    """,
    )
    # uv: `venv` makes a venv whose python logs calls; `pip` logs its arguments.
    _stub(
        bin_dir / "uv",
        f"""\
        printf 'uv %s\\n' "$*" >> {log}
        if [ "$1" = "venv" ]; then
          mkdir -p "$3/bin"
          printf '#!/usr/bin/env bash\\nexit 0\\n' \\
            > "$3/bin/python"
          chmod +x "$3/bin/python"
        fi
        exit 0
    """,
    )
    values = _setup_env(
        "openr1",
        venv,
        sft=True,
        attn_implementation="flash_attention_2",
        custom_dependencies=("einops",),
    )
    env_file = tmp_path / "setup.env"
    env_file.write_text(write_env_file(values))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    first = _run("setup_openr1.sh", env_file, env)
    assert first.returncode == 0, first.stdout + first.stderr
    calls = log.read_text().splitlines()
    openr1 = values["OPENR1_DIR"]
    assert calls[0] == f"git clone -q https://github.com/huggingface/open-r1.git {openr1}"
    assert calls[1] == f"git -C {openr1} checkout -q 1416fa0"
    assert calls[2] == f"uv venv -q {venv} --python 3.11 --seed"
    pip = [c.split(f"--python {venv}/bin/python ", 1)[1] for c in calls if " pip install " in c]
    assert pip == [
        "vllm==0.8.5.post1 torch==2.6.0",
        "setuptools",
        "--no-build-isolation flash-attn==2.7.4.post1",
        f"-e {openr1}",
        "peft==0.15.2 bitsandbytes>=0.43.2 python-dotenv",
        "transformers==4.52.3",
        "einops",
    ]
    assert Path(openr1, ".thinnka-ref").read_text().strip() == "1416fa0"
    log.write_text("")
    again = _run("setup_openr1.sh", env_file, env)
    assert again.returncode == 0 and "skipping setup" in again.stdout
    assert log.read_text() == ""


# ------------------------------------------------------------------ check_image.sh
def test_check_image_passes_on_a_ready_venv(tmp_path: Path) -> None:
    env_file = tmp_path / "check.env"
    values = _setup_env("trl", Path(sys.prefix), sft=True, skip_setup=True)
    values["NEED_BNB"] = "0"
    env_file.write_text(write_env_file(values))
    result = _run("check_image.sh", env_file)
    assert result.returncode == 0, result.stderr
    assert "nothing installed" in result.stdout


def test_check_image_lists_what_is_missing(tmp_path: Path) -> None:
    env_file = tmp_path / "check.env"
    env_file.write_text(write_env_file(_setup_env("trl", Path(sys.prefix), skip_setup=True)))
    result = _run("check_image.sh", env_file)  # GRPO with vLLM: this machine has no vllm
    assert result.returncode == 1
    assert "vllm is not installed" in result.stderr and "--no-vllm" in result.stderr
    env_file.write_text(write_env_file(_setup_env("openr1", tmp_path / "none", skip_setup=True)))
    missing = _run("check_image.sh", env_file)
    assert missing.returncode == 1
    assert "no Python venv" in missing.stderr and "no Open R1 checkout" in missing.stderr


# ------------------------------------------------------------------ serve_and_train.py
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SERVER = """\
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path.startswith("/health") else 404); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _serve(tmp_path: Path, server: list[str], train: list[str], port: int) -> tuple[int, str]:
    settings = {
        "server": server,
        "server_gpus": "0",
        "train": train,
        "train_gpus": "1,2,3",
        "health_urls": [f"http://127.0.0.1:{port}/health/", f"http://127.0.0.1:{port}/health"],
        "startup_timeout_s": 30,
        "poll_s": 0.2,
    }
    path = tmp_path / "serve_and_train.json"
    path.write_text(json.dumps(settings))
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "serve_and_train.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_serve_and_train_splits_gpus_and_stops_the_server(tmp_path: Path) -> None:
    port = _free_port()
    pid_file = tmp_path / "server.pid"
    server = [
        sys.executable,
        "-c",
        f"import os; open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n" + _SERVER,
        str(port),
    ]
    train = [
        sys.executable,
        "-c",
        "import os, sys; sys.exit(7 if os.environ['CUDA_VISIBLE_DEVICES'] == '1,2,3' else 1)",
    ]
    code, output = _serve(tmp_path, server, train, port)
    assert code == 7, output
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_serve_and_train_never_trains_without_a_server(tmp_path: Path) -> None:
    marker = tmp_path / "trained"
    code, output = _serve(
        tmp_path,
        [sys.executable, "-c", "raise SystemExit(3)"],
        ["touch", str(marker)],
        _free_port(),
    )
    assert code == 1 and "exited with status 3" in output
    assert not marker.exists()


# ------------------------------------------------------------------ thinnka_openr1.py
_FAKE_OPENR1 = {
    "__init__.py": "",
    "configs.py": """\
        from dataclasses import dataclass, field
        from typing import Optional
        @dataclass
        class ScriptArguments:
            dataset_name: Optional[str] = None
            dataset_train_split: str = "train"
            dataset_test_split: str = "test"
        @dataclass
        class GRPOScriptArguments(ScriptArguments):
            reward_funcs: list[str] = field(default_factory=lambda: ["accuracy"])
            dataset_prompt_column: str = "prompt"
        @dataclass
        class GRPOConfig:  # the fields of TRL's config that thinnka's wrapper touches
            output_dir: str = "out"
            system_prompt: Optional[str] = None
            eval_strategy: str = "no"
            eval_steps: Optional[int] = None
            per_device_eval_batch_size: int = 8
            num_generations: int = 3
            use_cpu: bool = False
        SFTConfig = GRPOConfig
    """,
    "grpo.py": """\
        import json, types
        from datasets import Dataset, DatasetDict
        def get_reward_funcs(script_args):
            return ["registry:" + name for name in script_args.reward_funcs]
        def get_dataset(script_args):
            rows = [{"problem": f"{n}+1?", "solution": str(n + 1)} for n in range(1, 21)]
            return DatasetDict({"train": Dataset.from_list(rows)})
        class GRPOTrainer:  # what thinnka_eval.py uses of transformers' Trainer
            def __init__(self, args, train_dataset, eval_dataset):
                self.args, self.train_dataset, self.eval_dataset = args, train_dataset, eval_dataset
                self.trained = False
                self.state = types.SimpleNamespace(log_history=[])
                self.callback_handler = types.SimpleNamespace(callbacks=[])
                self.add_callback = self.callback_handler.callbacks.append
                self.accelerator = types.SimpleNamespace(is_main_process=True)
                self.model = types.SimpleNamespace(modules=lambda: [])
            def evaluate(self):
                value = 0.75 if self.trained else 0.25
                self.state.log_history.append(
                    {"eval_rewards/accuracy/mean": value, "eval_reward": value})
                return {"eval_loss": 0.0}
            def train(self, resume_from_checkpoint=None):
                self.trained = True
            def create_model_card(self, **kwargs):
                with open(self.args.output_dir + ".card", "w") as card:
                    card.write("# card")
        def main(script_args, training_args, model_args):
            funcs = [f if isinstance(f, str) else f.__module__ + "." + f.__name__
                     for f in get_reward_funcs(script_args)]
            dataset = get_dataset(script_args)
            rows = list(dataset[script_args.dataset_train_split])
            with open(training_args.output_dir, "w") as out:
                json.dump({"rewards": funcs, "rows": rows}, out)
            trainer = GRPOTrainer(
                training_args, dataset[script_args.dataset_train_split],
                dataset[script_args.dataset_test_split]
                if training_args.eval_strategy != "no" else None,
            )
            trainer.train()
            trainer.create_model_card()
    """,
}


def test_openr1_wrapper_resolves_rewards_and_folds(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    pkg = tmp_path / "fake" / "open_r1"
    pkg.mkdir(parents=True)
    for name, text in _FAKE_OPENR1.items():
        (pkg / name).write_text(textwrap.dedent(text))
    run = tmp_path / "run"
    run.mkdir()
    o = validate(
        RunOptions(repo_id="google/gemma-2-2b-it", reasoning_tag="<r>", reasoning_end_tag="</r>")
    )
    rendered = render(
        o,
        ModelContext(hub_model_id="me/x", has_chat_template=True, system_role_supported=False),
        RemotePaths(run_dir=str(run), output_dir="o", venv="v", hf_home="h"),
    )
    for name, text in rendered.files.items():
        (run / name).write_text(text)
    result_file = tmp_path / "result.json"
    recipe = {
        "reward_funcs": rendered.recipe["reward_funcs"],
        "output_dir": str(result_file),
        "dataset_prompt_column": "problem",
        "dataset_name": "x",
    }
    (run / "mini.yaml").write_text(json.dumps(recipe))
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))
    done = subprocess.run(
        [sys.executable, str(run / "thinnka_openr1.py"), "--config", "mini.yaml"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(result_file.read_text())
    assert result["rewards"] == [
        "registry:accuracy",
        "thinnka_rewards.format_reward",
        "thinnka_rewards.tag_count_reward",
    ]
    assert result["rows"][0]["problem"].startswith("You are a helpful AI Assistant")
    assert result["rows"][0]["problem"].endswith("+1?")
    # The held-out split (5 % of 20 rows: 1) is out of training, scored before and after.
    assert len(result["rows"]) == 19
    scores = json.loads((run / "scores.json").read_text())
    assert scores == {
        "split": "1 held-out rows",
        "rows": 1,
        "before": {"accuracy": 0.25, "reward": 0.25},
        "after": {"accuracy": 0.75, "reward": 0.75},
    }


# ------------------------------------------------------------------ thinnka_rewards.py
def _rewards(tmp_path: Path, **tags: str) -> ModuleType:
    shutil.copy(SCRIPTS / "thinnka_rewards.py", tmp_path / "thinnka_rewards.py")
    (tmp_path / "thinnka_rewards.json").write_text(json.dumps(tags))
    spec = importlib.util.spec_from_file_location(
        f"rewards_{tmp_path.name}", tmp_path / "thinnka_rewards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _c(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_custom_tag_rewards(tmp_path: Path) -> None:
    r = _rewards(
        tmp_path,
        reasoning_tag="<reasoning>",
        reasoning_end_tag="</reasoning>",
        answer_tag="<final>",
        answer_end_tag="</final>",
    )
    good = "<reasoning>\n2 and 2\n</reasoning>\n<final>\n4\n</final>"
    bad = "<think>2 and 2</think> 4"
    half = "<reasoning>2 and 2</reasoning> 4"
    assert r.format_reward([_c(good), bad, _c(half)]) == [1.0, 0.0, 0.0]
    assert r.tag_count_reward([_c(good), _c(bad), _c(half)]) == [1.0, 0.0, 0.5]
    assert r.extract_answer(good) == "4"
    scores = r.accuracy_reward([_c(good), _c(half), _c("<final>5</final>")], solution=["$4$"] * 3)
    assert scores == [1.0, 1.0, 0.0]


def test_reasoning_only_rewards(tmp_path: Path) -> None:
    r = _rewards(
        tmp_path,
        reasoning_tag="<think>",
        reasoning_end_tag="</think>",
        answer_tag="",
        answer_end_tag="",
    )
    assert r.format_reward(["<think>x</think> \\boxed{3}", "<think>x</think>", "3"]) == [
        1.0,
        0.0,
        0.0,
    ]
    assert r.accuracy_reward(["<think>1+2</think> \\boxed{3}"], solution=["3"]) == [1.0]
    with pytest.raises(ValueError, match="solution"):
        r.accuracy_reward(["x"])


def test_scripts_are_shipped_verbatim() -> None:
    for name in (
        "thinnka_trl_train.py",
        "thinnka_openr1.py",
        "thinnka_rewards.py",
        "merge.py",
        "serve_and_train.py",
    ):
        assert script_text(name) == (SCRIPTS / name).read_text()


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scores_on_the_way_are_evenly_spaced_inside_the_run() -> None:
    steps = _script("thinnka_eval").eval_steps
    assert steps(100, 4) == {20, 40, 60, 80}
    assert steps(10, 3) == {3, 5, 8}
    assert steps(2, 4) == {1}  # a short run has fewer; the last step is the "after" score
    assert steps(1, 4) == steps(0, 4) == steps(100, 0) == set()

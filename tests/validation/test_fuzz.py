"""Property: any hostile value of any option, ``--set`` key or ``.env`` line is refused with a
message, or planned with the value held literally; never a traceback, a secret, a pod or a row.

Seeded (``derandomize``) and bounded: the examples of each test are fixed, so a failure
reproduces, and the three tests together stay within ~30 s on a CI core.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.validation.conftest import Outcome, PlanWorld
from thinnka.cli.flags import RUN_OPTIONS
from thinnka.planning.schema import load_schema

# What an attacker or a slip of the finger types: shell metacharacters, traversal, control
# characters, Unicode look-alikes, non-finite numbers, other URL schemes, YAML and Jinja syntax.
CURATED = [
    "", " ", "nan", "NaN", "inf", "-inf", "1e999", ".nan", ".inf", "-1", "0", "1",
    "99999999999999999999", "me/x\n", "me/x;touch /tmp/p", "$(id)", "`id`", "a|b", "a&&b",
    "../../etc", "/etc", "/etc/passwd", "~root", "tïny", "org/tïny", "ＡＢＣ", "a\x00b", "a\u2028b",
    "a\rb", "\x1b[31mred", "'", '"', "\\", "file:///etc/passwd", "gopher://h/x",
    "http://user:pw@127.0.0.1:9/", "javascript:alert(1)", "{{ 7*7 }}", "{% for %}", "[*a]",
    "&a [1, 2]", "{a: &a [x], b: *a}", "[.nan]", "{x: 1", "- a", "key: value", "null", "~",
    "true", "a" * 300, "org/" + "n" * 97, "x" * 5000, "--help", "-v", "ok-value", "org/name",
    "/workspace/out", "out/dir", "L40S", "sdpa", "wandb",
]  # fmt: skip
HOSTILE = st.one_of(
    st.sampled_from(CURATED),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=24),
)
STACKS = [("trl", "sft"), ("trl", "grpo"), ("openr1", "sft"), ("openr1", "grpo")]
# Options whose value lands in the recipe under this key when accepted.
LANDS_AS = {
    "--repo-id": "model_name_or_path",
    "--hub-model-id": "hub_model_id",
    "--dataset-name": "dataset_name",
    "--output-dir": "output_dir",
    "--dataset-prompt-column": "dataset_prompt_column",
}
VALUE_OPTIONS = [spec for spec in RUN_OPTIONS if spec.type is not bool and "/" not in spec.flags[0]]
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _stack_args(trainer: str, mode: str) -> list[str]:
    return ["--trainer", trainer, *(["--sft"] if mode == "sft" else [])]


def _check(world: PlanWorld, result: Outcome, extra_secrets: tuple[str, ...] = ()) -> Any:
    """The common property; returns the plan when one was made."""
    assert "Traceback" not in result.err and "Traceback" not in result.out, result.err
    for secret in (*world.secrets(), *extra_secrets):
        assert secret not in result.out and secret not in result.err, "secret in output"
    world.assert_nothing_created()
    if result.code != 0:
        assert result.code in (1, 2), result
        assert "Error" in result.err, result.err
        return None
    plan = json.loads(result.out)
    recipe = plan["recipe"]
    # Safely quoted: the recipe survives YAML as the pod reads it, value for value.
    assert yaml.safe_load(yaml.safe_dump(recipe, allow_unicode=True)) == recipe
    assert all(_finite(v) for v in _leaves(recipe)), "a non-finite number reached a recipe"
    return plan


def _run_refuses_too(world: PlanWorld, plan_args: list[str], result: Outcome) -> None:
    """What ``plan`` refuses (exit 2), ``run`` refuses the same way: no row, no pod."""
    if result.code != 2:
        return
    run_args = ["run", *(a for a in plan_args[1:] if a != "--json")]
    ran = world.cli(*run_args)
    assert ran.code == 2, (run_args, ran.err)
    assert ran.out == "" and "Traceback" not in ran.err, ran.err
    for secret in world.secrets():
        assert secret not in ran.err, "secret in output"
    world.assert_nothing_created()


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


@settings(FUZZ, max_examples=140)
@given(
    spec=st.sampled_from(VALUE_OPTIONS),
    value=HOSTILE,
    stack=st.sampled_from(STACKS),
)
def test_any_option_value(plan_world: PlanWorld, spec: Any, value: str, stack: Any) -> None:
    flag = spec.flags[0].split("/")[0]
    args = ["plan", "--json", *_stack_args(*stack)]
    if spec.name != "repo_id":
        args += ["--repo-id", plan_world.model]
    args.append(f"{flag}={value}")
    result = plan_world.cli(*args)
    plan = _check(plan_world, result)
    _run_refuses_too(plan_world, args, result)
    key = LANDS_AS.get(flag)
    if plan is not None and key in plan["recipe"]:
        assert plan["recipe"][key] == value, (flag, value)


def _schema_keys() -> list[tuple[str, str, str]]:
    return [
        (trainer, mode, key)
        for trainer, mode in STACKS
        for key in sorted(load_schema(trainer, mode).keys)
    ]


@settings(FUZZ, max_examples=170)
@given(target=st.sampled_from(_schema_keys()), value=HOSTILE)
def test_any_set_key_and_value(plan_world: PlanWorld, target: Any, value: str) -> None:
    trainer, mode, key = target
    args = ["plan", "--json", "--repo-id", plan_world.model, *_stack_args(trainer, mode)]
    args += ["--set", f"{key}={value}"]
    result = plan_world.cli(*args)
    plan = _check(plan_world, result)
    _run_refuses_too(plan_world, args, result)
    spec = load_schema(trainer, mode).keys[key]
    raw = value.strip()
    literal = spec.types == ("str",) and raw.lower() not in ("null", "~")
    if plan is not None and literal and key in plan["recipe"]:
        assert plan["recipe"][key] == raw, (key, value)


_ENV_NAMES = ["RUNPOD_API_KEY", "HF_TOKEN", "HUGGINGFACE_HUB_TOKEN", "WANDB_API_KEY",
              "SSH_PUBLIC_KEY", "RUNPOD_SSH_PUBLIC_KEY", "SSH_PRIVATE_KEY_PATH",
              "JUNK_NAME"]  # fmt: skip
# URL settings get only values that must be refused (or stay as they are): anything else
# could send thinnka looking for a host on the network.
_BAD_URLS = ["file:///etc/passwd", "gopher://h/x", "http://user:pw@127.0.0.1:9", "ftp://h",
             "http://", "127.0.0.1:9", '"http://h\\nX"', "https://[::1", "http://h:0/"]  # fmt: skip
_URL_NAMES = ["HF_ENDPOINT", "RUNPOD_API_BASE_URL", "PROGRESS_WEBHOOK_URL", "DISCORD_WEBHOOK_URL"]
_SENTINEL = "Zq9SENT"
ENV_LINE = st.one_of(
    st.tuples(st.sampled_from(_ENV_NAMES), HOSTILE).map(
        lambda kv: (
            f"{kv[0]}={_SENTINEL}{kv[1]}"
            if "KEY" in kv[0] or "TOKEN" in kv[0]
            else f"{kv[0]}={kv[1]}"
        )
    ),
    st.tuples(
        st.sampled_from(_URL_NAMES),
        st.sampled_from(_BAD_URLS),
    ).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30).map(
        lambda s: s.replace("THINNKA", "X")
    ),
)


@settings(FUZZ, max_examples=50)
@given(lines=st.lists(ENV_LINE, min_size=1, max_size=4))
def test_any_env_file(plan_world: PlanWorld, lines: list[str]) -> None:
    env = plan_world.workdir / ".env"
    base = "".join(f"{k}={v}\n" for k, v in plan_world.dotenv.items())
    env.write_text(base + "\n".join(lines) + "\n", encoding="utf-8")
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                            "--trainer", "trl")  # fmt: skip
    _check(plan_world, result, extra_secrets=(_SENTINEL,))


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999", ".nan", "-.inf"])
def test_set_of_a_non_finite_number_is_refused(plan_world: PlanWorld, value: str) -> None:
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                            "--set", f"learning_rate={value}")  # fmt: skip
    assert result.code == 2 and "finite" in result.err, result.err


RUN_IDS = ["", "r-zzzzzz", "r-x\n", "../../etc/passwd", "r-$(id)", "%", "_", "r-%", "'; DROP",
           "r-tïny", "\x00", "a" * 300]  # fmt: skip


@pytest.mark.parametrize("command", ["show", "logs", "resume", "cancel"])
def test_run_id_commands_refuse_any_unknown_id(plan_world: PlanWorld, command: str) -> None:
    for run_id in RUN_IDS:
        result = plan_world.cli(command, "--", run_id)
        assert result.code == 2, (command, run_id, result.err)
        assert "No run" in result.err and "Traceback" not in result.err, result.err
        plan_world.assert_nothing_created()

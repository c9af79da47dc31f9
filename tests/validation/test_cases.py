"""Each input of issue 14's "what was seen": refused before anything exists, or handled.

Every case ran through ``plan`` or ``run`` in this process against the emulated Hub and
Runpod; each asserts the exit code, the one-line message, and that no pod and no run row
were created.
"""

from __future__ import annotations

import json

import pytest

from tests.validation.conftest import WANDB_CANARY, PlanWorld


def _refused(
    world: PlanWorld, args: list[str], message: str, *, commands: tuple[str, ...] = ("plan", "run")
) -> None:
    for command in commands:
        extra = ["--json"] if command == "plan" else []
        result = world.cli(command, *extra, "--repo-id", world.model, "--sft", *args)
        assert result.code == 2, (command, args, result.err)
        assert message in result.err, (command, result.err)
        assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
        world.assert_nothing_created()


# ------------------------------------------------------------------ money spent on bad values
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-hours", "nan"], "--max-hours must be a number"),
        (["--max-hours", "inf"], "--max-hours must be a number"),
        (["--max-price", "nan"], "--max-price must be a number"),
        (["--max-price", "inf"], "--max-price must be a number"),
        (["--dataset-fraction", "nan"], "--dataset-fraction must be between 0 and 1"),
        (["--hub-model-id", "me/x\n"], "--hub-model-id 'me/x\\n' is not a valid Hub repo id"),
        (["--hub-model-id", "me/tïny-sft"], "--hub-model-id 'me/tïny-sft' is not a valid"),
        (["--repo-id", "some-org/tïny-model"], "--repo-id 'some-org/tïny-model' is not a valid"),
        (["--dataset-name", "org/data\n"], "--dataset-name 'org/data\\n' is not a valid"),
        (["--pod-name", "pod\n"], "--pod-name may hold"),
        # Refused by the training plan: `run` used to record a failed run (exit 1) for it.
        (["--chat-template", "plain words"], "--chat-template is neither an existing file"),
    ],
)
def test_values_that_were_never_valid_cost_nothing(
    plan_world: PlanWorld, args: list[str], message: str
) -> None:
    _refused(plan_world, args, message)


# ------------------------------------------------------------------ --set is no back door
def test_set_hub_model_id_gets_the_write_access_check(plan_world: PlanWorld) -> None:
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                            "--set", "hub_model_id=other-org/overwrite-me")  # fmt: skip
    assert result.code == 2, result.err
    assert "cannot write to 'other-org'" in result.err
    plan_world.assert_nothing_created()


def test_set_hub_model_id_that_may_be_written_is_the_push_target(plan_world: PlanWorld) -> None:
    target = "thinnka-tester/from-set"
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                            "--set", f"hub_model_id={target}")  # fmt: skip
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["hub_model_id"] == target == plan["recipe"]["hub_model_id"]


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("hub_model_id=me/x;touch /tmp/p", "--hub-model-id 'me/x;touch /tmp/p' is not a valid"),
        ("output_dir=/etc", "--output-dir '/etc': an absolute path must lie under"),
        ("model_name_or_path=../../etc", "--repo-id '../../etc' is not a valid Hub repo id"),
        ("logging_dir=/etc/x", "--set logging_dir '/etc/x' is not a usable pod path"),
        ("hub_token=hf_abc", "--set hub_token is not allowed"),
        ("report_to=all", "--set report_to=all: use --report-to"),
    ],
)
def test_set_of_an_owned_key_passes_its_options_rules(
    plan_world: PlanWorld, pair: str, message: str
) -> None:
    _refused(plan_world, ["--set", pair], message)


@pytest.mark.parametrize("args", [["--report-to", "wandb"], ["--set", "report_to=wandb"],
                                  ["--set", "report_to=[wandb, tensorboard]"]])  # fmt: skip
def test_wandb_without_its_key_is_refused_by_plan_and_run(
    plan_world: PlanWorld, args: list[str]
) -> None:
    _refused(plan_world, args, "needs WANDB_API_KEY")
    plan_world.write_dotenv(WANDB_API_KEY=WANDB_CANARY)
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft", *args)
    assert result.code == 0, result.err
    assert "wandb" in json.loads(result.out)["recipe"]["report_to"]


# ------------------------------------------------------------------ values never checked
BILLION_LAUGHS = (
    "{a: &a [x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a], "
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b], d: [*c, *c, *c, *c, *c, *c, *c, *c]}"
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output-dir", "out\nrm -rf /"], "--output-dir 'out\\nrm -rf /' is not a usable"),
        (["--output-dir", "out;id"], "--output-dir 'out;id' is not a usable pod path"),
        (["--output-dir", "/etc"], "an absolute path must lie under"),
        (["--output-dir", "../../root"], "is not a usable pod path"),
        (["--image", "img:1\ncurl x|sh"], "is not a container image reference"),
        (["--image", "img;id"], "is not a container image reference"),
        (["--image", "/etc"], "is not a container image reference"),
        (["--progress-url", "file:///etc/passwd"], "--progress-url must be an http:// or https"),
        (["--discord-webhook-url", "gopher://h/x"], "--discord-webhook-url must be an http://"),
        (["--chat-template", "{% for m in messages %}{{ m }}"], "is not a valid Jinja template"),
        (["--chat-template", "{{ x " + "y" * 70000 + " }}"], "at most 65536 are allowed"),
        # Refused by the plan the run makes before its row (it used to be a failed run).
        (["--chat-template", "[.nan]"], "neither an existing file nor a Jinja template"),
        (["--eval-fraction", "0.9"], "--eval-fraction must be a number at least 0 and at most"),
        (["--eval-dataset-name", "a/b", "--eval-dataset-path", "x.jsonl"], "exclude each other"),
        (["--set", f"lr_scheduler_kwargs={BILLION_LAUGHS}"], "YAML anchors and aliases"),
        (["--gpu-type", "L40S\n"], "--gpu-type may hold"),
        (["--set", "learning_rate=1e-5\nX"], "--set learning_rate must be one line"),
    ],
)
def test_values_never_checked_are_checked(
    plan_world: PlanWorld, args: list[str], message: str
) -> None:
    _refused(plan_world, args, message)


def test_a_chat_template_with_transformers_generation_tag_is_accepted(
    plan_world: PlanWorld,
) -> None:
    template = ("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
                "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}"
                "{% endfor %}")  # fmt: skip
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                            "--trainer", "trl", "--chat-template", template)  # fmt: skip
    assert result.code == 0, result.err


def test_a_chat_template_file_is_read_only_when_it_can_be_a_template(
    plan_world: PlanWorld,
) -> None:
    binary = plan_world.workdir / "template.bin"
    binary.write_bytes(b"\xff\xfe{{ x }}")
    huge = plan_world.workdir / "huge.jinja"
    huge.write_text("{{ x }}" * 60_000)
    _refused(plan_world, ["--chat-template", str(binary)], "is not UTF-8 text")
    _refused(plan_world, ["--chat-template", str(huge)], "is too large for a template")


def test_an_output_dir_on_the_volume_or_relative_is_kept_literally(plan_world: PlanWorld) -> None:
    for value in ("/workspace/my-out", "out/sft"):
        result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                                "--output-dir", value)  # fmt: skip
        assert result.code == 0, result.err
        assert json.loads(result.out)["recipe"]["output_dir"] == value


def test_webhook_urls_in_settings_are_http_only(plan_world: PlanWorld) -> None:
    plan_world.write_dotenv(PROGRESS_WEBHOOK_URL="file:///etc/passwd")
    _refused(plan_world, [], "PROGRESS_WEBHOOK_URL must be an http:// or https:// URL")


def test_malformed_env_lines_are_warned_by_number_and_reported_by_doctor(
    plan_world: PlanWorld,
) -> None:
    env = plan_world.workdir / ".env"
    env.write_text(env.read_text() + "this line has no equals sign hf_SECRETLINE\n")
    line = len(env.read_text().splitlines())
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft")
    assert result.code == 0, result.err
    assert f"line {line} is not KEY=VALUE and was ignored" in result.err
    assert "hf_SECRETLINE" not in result.err  # the line may hold a secret: never echoed
    doctor = plan_world.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.out)}
    assert checks["env file"]["status"] == "warn"
    assert f"line {line} is not KEY=VALUE" in checks["env file"]["detail"]


# ------------------------------------------------------------------ exit codes
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-price", "0.01"], "All GPUs that fit cost more than --max-price $0.01/h"),
        (["--gpu-type", "Nonexistent"], "--gpu-type 'Nonexistent' matches nothing that fits"),
    ],
)
def test_refusing_the_users_gpu_choice_is_a_usage_error(
    plan_world: PlanWorld, args: list[str], message: str
) -> None:
    # `run` as well as `plan`: exit 2, the message, and no run row (not a failed one).
    _refused(plan_world, args, message)


def test_a_token_that_cannot_write_the_namespace_is_a_usage_error(plan_world: PlanWorld) -> None:
    plan_world.write_dotenv(HF_TOKEN=plan_world.hub_env.tokens.read)
    _refused(plan_world, [], "cannot write to 'thinnka-tester'")


def test_a_hub_model_id_in_a_namespace_the_token_cannot_write_is_a_usage_error(
    plan_world: PlanWorld,
) -> None:
    _refused(
        plan_world, ["--hub-model-id", "other-org/overwrite-me"], "cannot write to 'other-org'"
    )


# ------------------------------------------------------------------ durable runs (issue 22)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-restarts", "11"], "--max-restarts must be between 0 and 10"),
        (["--max-restarts", "-1"], "--max-restarts must be between 0 and 10"),
        (["--network-volume", "a b"], "--network-volume may hold"),
        (["--network-volume", "vol", "--cloud-type", "COMMUNITY"], "needs Secure Cloud"),
    ],
)
def test_durable_run_options_out_of_range_cost_nothing(
    plan_world: PlanWorld, args: list[str], message: str
) -> None:
    _refused(plan_world, args, message)


def test_a_network_volume_on_the_graphql_transport_is_refused(plan_world: PlanWorld) -> None:
    """Volumes are a REST v2 resource: a run on GraphQL could not attach one."""
    plan_world.write_dotenv(THINNKA_RUNPOD_API="graphql")
    _refused(plan_world, ["--network-volume", "vol"], "--network-volume needs Runpod's REST v2")


def test_plan_shows_checkpoints_and_the_volume_it_would_create(plan_world: PlanWorld) -> None:
    """`plan` creates nothing: it says where the volume would be made and which candidates
    have stock there, and where checkpoints go and what a save costs."""
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft",
                            "--network-volume", "ckpt-vol")  # fmt: skip
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    volume, checkpoints = plan["network_volume"], plan["checkpoints"]
    assert (volume["name"], volume["exists"]) == ("ckpt-vol", False)
    assert volume["data_center"] and plan["gpu"] in volume["candidates"]
    assert (checkpoints["where"], checkpoints["save_steps"]) == ("volume", 60)
    assert checkpoints["upload_s"] is None and plan["recipe"]["hub_strategy"] == "end"
    hub = json.loads(plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft").out)
    assert hub["checkpoints"]["where"] == "hub" and hub["checkpoints"]["upload_s"] is not None
    assert hub["network_volume"] is None
    text = plan_world.cli("plan", "--repo-id", plan_world.model, "--sft",
                          "--network-volume", "ckpt-vol")  # fmt: skip
    assert "checkpoints  every 60 steps to the network volume" in text.out
    assert f"volume  ckpt-vol will be created in {volume['data_center']}" in text.out
    plan_world.assert_nothing_created()
    assert plan_world.runpod.volumes() == []


def test_a_chat_template_that_is_neither_file_nor_template_creates_no_run(
    plan_world: PlanWorld,
) -> None:
    """`run` created the row and failed in the estimate step, where `plan` refused (exit 2):
    the template check now runs before the row, as the GPU checks do."""
    _refused(plan_world, ["--chat-template", "[.nan]"], "neither an existing file nor a Jinja")

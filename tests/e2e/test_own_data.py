"""Your data in, scores out: a local data set trains a run end to end, scored before and after.

Real TRL on the CPU, the emulated world: the file is read and checked here, uploaded over
SFTP into the run folder, the trainer's own evaluation loop scores the held-out rows with
the base model and the trained one, and the scores are stored, shown, sent with the final
event and written into the model card on the (emulated) Hub.
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_pipeline import CPU, GRPO_SMALL, _run_id
from tests.plugins.thinnka_world import World
from tests.world.tiny import grpo_rows, sft_rows
from tests.world.webhook import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# A string only the data file holds: it must never leave it but over SFTP.
CANARY = "zebra-canary-7731"
DISCORD_TOKEN = "discordtoken-own-data"


def _sft_file(folder: Path, rows: int = 40) -> Path:
    data = sft_rows(rows)
    data[0]["messages"][0]["content"] = f"What is 2 + 2? ({CANARY})"
    path = folder / "my chats.jsonl"  # a space: a path that is quoted wherever it goes
    path.write_text("".join(json.dumps(row) + "\n" for row in data))
    return path


def _grpo_file(folder: Path, rows: int = 40) -> Path:
    path = folder / "problems.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["problem", "solution"])
        writer.writeheader()
        writer.writerows(grpo_rows(rows))
    return path


class ArgumentWatch:
    """The command line of every process of the world (the pod's processes run on this
    machine too), sampled while a run goes on."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.seen.update(self.world.process_arguments().splitlines())
            self._stop.wait(0.5)

    def __enter__(self) -> ArgumentWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _scores(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {score["name"]: score for score in shown["scores"]}


def test_sft_from_a_local_jsonl_is_scored_before_and_after(world: World, tmp_path: Path) -> None:
    data = _sft_file(tmp_path)
    with (
        WebhookReceiver() as hook,
        WebhookReceiver(f"/api/webhooks/42/{DISCORD_TOKEN}") as discord,
        ArgumentWatch(world) as watch,
    ):
        world.write_dotenv(PROGRESS_WEBHOOK_URL=hook.url, DISCORD_WEBHOOK_URL=discord.url)
        result = world.thinnka(
            "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "2",
            "--dataset-path", str(data), "--eval-fraction", "0.1", *CPU,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = _run_id(result.stdout)
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")

    # The file's path and hash are the run's; the pod holds the very bytes, in the run folder.
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert [(d["role"], d["path"], d["sha256"], d["rows"]) for d in shown["data"]] == [
        ("train", str(data), digest, 40)
    ]
    run_dir = Path(shown["remote"]["run_dir"])
    assert (run_dir / "data" / "train" / "part-00000.jsonl").read_bytes() == data.read_bytes()
    assert f"dataset_name: {run_dir}/data/train" in (run_dir / "recipe.yaml").read_text()

    # Scored on 4 held-out rows (10 % of 40), by the base model and by the trained one.
    scores = _scores(shown)
    assert set(scores) >= {"eval_loss", "perplexity"}, scores
    for score in scores.values():
        assert score["before"] is not None and score["after"] is not None, score
        assert score["split"] == "4 held-out rows" and score["rows"] == 4
    assert scores["eval_loss"]["after"] != scores["eval_loss"]["before"]  # training moved it
    text = world.thinnka("show", run_id)
    assert digest in text.stdout and "eval_loss" in text.stdout and "perplexity" in text.stdout
    # Scored on the way too (--eval-points 4 of a 2-step run: step 1), so each score has a
    # curve over the steps: the base model at 0, step 1, the trained model at 2.
    curve = next(line for line in text.stdout.splitlines() if "eval/eval_loss" in line)
    assert "(min" in curve and curve.endswith(", 3 steps)"), curve
    assert shown["metrics"]["eval/eval_loss"] == scores["eval_loss"]["after"]
    report = world.workdir / "report.html"
    assert world.thinnka("report", run_id, "--output", str(report)).returncode == 0
    page = report.read_text()
    curves = page.split("Scores over the steps", 1)[1].split("<h2>Metrics</h2>", 1)[0]
    assert curves.count("<svg") == len(scores) and "eval_loss" in curves

    # In the pushed model card, read back from the Hub.
    card = world.hub.files(shown["hub_model_id"])["README.md"].decode()
    assert "## Evaluation" in card and "| eval_loss |" in card and "4 held-out rows" in card
    assert CANARY not in card and str(data) not in card

    # The final event carries the scores, to the webhook and to Discord.
    done = [p for p in hook.received if p["event"] == "done"]
    assert done and [s["name"] for s in done[-1]["scores"]] == [s["name"] for s in shown["scores"]]
    finals = [m["content"] for m in discord.received if "succeeded" in m["content"]]
    assert finals and "eval: eval_loss" in finals[-1], finals
    # The evaluation's own progress bars are never taken for training steps.
    progress = [p for p in hook.received if p["event"] == "progress"]
    assert progress and {p["total_steps"] for p in progress} == {2}, progress

    # The data went over SFTP only: not in a payload, nor on a command line of the pod.
    payloads = json.dumps(hook.received) + json.dumps(discord.received)
    assert CANARY not in payloads and str(data) not in payloads and data.name not in payloads
    pod_side = [line for line in watch.seen if " -m thinnka " not in f"{line} "]
    assert any("accelerate" in line for line in pod_side), "the watch missed the training"
    for line in pod_side:
        assert CANARY not in line and str(data) not in line, line


def test_grpo_from_a_local_csv_is_scored_per_reward(world: World, tmp_path: Path) -> None:
    data = _grpo_file(tmp_path)
    # An eval set of its own, in another format: uploaded beside the training data.
    held = tmp_path / "held-out.jsonl"
    held.write_text("".join(json.dumps(row) + "\n" for row in grpo_rows(42)[40:]))
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--max-steps", "2",
        "--dataset-path", str(data), "--eval-dataset-path", str(held), *GRPO_SMALL, *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = world.show(_run_id(result.stdout))
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert [(d["role"], d["path"], d["format"]) for d in shown["data"]] == [
        ("train", str(data), "csv"), ("eval", str(held), "json")
    ]  # fmt: skip
    run_dir = Path(shown["remote"]["run_dir"])
    assert (run_dir / "data" / "eval" / "part-00000.jsonl").read_bytes() == held.read_bytes()
    scores = _scores(shown)
    # thinnka's rewards for the default <think> tags: accuracy (reads `solution`), format,
    # tag count; each a mean over the 2 eval prompts' generations, before and after.
    assert {"accuracy_reward", "format_reward", "tag_count_reward"} <= set(scores), scores
    for score in scores.values():
        assert isinstance(score["before"], float) and isinstance(score["after"], float)
        assert score["rows"] == 2 and score["split"] == "2 rows of the eval data set (local)"
    card = world.hub.files(shown["hub_model_id"])["README.md"].decode()
    assert "## Evaluation" in card and "| accuracy_reward |" in card
    # Each reward scored on the way too (step 1 of 2), generated by the policy of that step.
    text = world.thinnka("show", shown["id"]).stdout
    curve = next(line for line in text.splitlines() if "eval/accuracy_reward" in line)
    assert curve.endswith(", 3 steps)"), curve
    assert shown["metrics"]["eval/accuracy_reward"] == scores["accuracy_reward"]["after"]

    # ls sorts and filters by a score.
    listed = world.thinnka("ls", "--all", "--json", "--sort", "score:accuracy_reward")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["id"] == shown["id"]
    table = world.thinnka("ls", "--all", "--score", "accuracy_reward>=-1")
    assert shown["id"] in table.stdout and "accuracy_reward" in table.stdout
    none = world.thinnka("ls", "--all", "--json", "--score", "accuracy_reward>2")
    assert json.loads(none.stdout) == []


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("missing_column", "no column SFT can train on"),
        ("broken_json_line", "line 3: not JSON"),
        ("empty_file", "holds no rows"),
        ("no_assistant_turn", "line 2: column 'messages' has no assistant turn"),
        ("csv_messages", "CSV cannot hold one"),
    ],
)
def test_a_malformed_file_is_refused_with_exit_2_and_nothing_created(
    world: World, tmp_path: Path, case: str, said: str
) -> None:
    good = [json.dumps(row) for row in sft_rows(4)]
    path = tmp_path / ("data.csv" if case == "csv_messages" else "data.jsonl")
    if case == "missing_column":
        path.write_text("\n".join(json.dumps({"question": "q", "answer": "a"}) for _ in range(3)))
    elif case == "broken_json_line":
        path.write_text("\n".join([good[0], good[1], '{"messages": [', good[2]]) + "\n")
    elif case == "empty_file":
        path.write_text("\n\n")
    elif case == "no_assistant_turn":
        path.write_text(
            good[0] + "\n" + json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
        )
    else:
        path.write_text('messages\n"[{""role"": ""user"", ""content"": ""hi""}]"\n')
    for command in ("plan", "run"):
        result = world.thinnka(command, "--repo-id", world.hub.models.chat, "--sft",
                               "--dataset-path", str(path), *CPU)  # fmt: skip
        assert result.returncode == 2, (command, result.stderr[-2000:])
        assert said in result.stderr and str(path) in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert json.loads(world.thinnka("ls", "--all", "--json").stdout) == []
    assert world.runpod.ledger() == []


def test_grpo_file_without_the_reward_column_names_it(world: World, tmp_path: Path) -> None:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"problem": r["problem"]}) + "\n" for r in grpo_rows(3)))
    result = world.thinnka("run", "--repo-id", world.hub.models.chat, "--dataset-path", str(path),
                           *GRPO_SMALL, *CPU)  # fmt: skip
    assert result.returncode == 2
    assert "column 'solution' missing" in result.stderr and "GRPO needs `problem`, `solution`" in (
        result.stderr
    )
    assert world.runpod.ledger() == []


def test_dataset_name_and_path_exclude_each_other(world: World, tmp_path: Path) -> None:
    path = _sft_file(tmp_path, rows=4)
    result = world.thinnka("plan", "--repo-id", world.hub.models.chat, "--sft", "--dataset-path",
                           str(path), "--dataset-name", world.hub.datasets.sft, *CPU)  # fmt: skip
    assert result.returncode == 2 and "exclude each other" in result.stderr


def test_plan_prints_rows_columns_and_lengths(world: World, tmp_path: Path) -> None:
    path = _sft_file(tmp_path, rows=40)
    result = world.thinnka("plan", "--repo-id", world.hub.models.chat, "--sft", "--dataset-path",
                           str(path), *CPU)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"data (train)  {path}: 40 rows" in result.stdout
    assert "columns  messages" in result.stdout and "lengths  characters: min" in result.stdout
    assert "on 0.05 of the training rows held out (seed 42, at most 200 rows): 2 rows" in (
        result.stdout
    )
    assert "before, 4 times during and after training" in result.stdout  # --eval-points 4
    no_eval = world.thinnka("plan", "--repo-id", world.hub.models.chat, "--sft", "--dataset-path",
                            str(path), "--eval-fraction", "0", "--json", *CPU)  # fmt: skip
    planned = json.loads(no_eval.stdout)
    assert planned["evaluation"] is None and planned["data"][0]["rows"] == 40
    assert planned["recipe"]["dataset_name"].endswith("/data/train")
    assert str(path) not in json.dumps(planned["recipe"])

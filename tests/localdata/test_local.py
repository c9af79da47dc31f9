"""``thinnka.data``: local data sets read, checked against the run's rules, hashed, uploaded."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import pytest

from tests.world.sshd import FakeSshd
from thinnka.clients.ssh import SshTarget, connect
from thinnka.data import local as local_module
from thinnka.data.local import LocalData, read_local_data
from thinnka.data.upload import upload_data
from thinnka.errors import ConfigError
from thinnka.planning.datarules import ColumnRule

SFT = ColumnRule("sft")
GRPO = ColumnRule("grpo", "problem", ("solution",))


def _chat(n: int) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": f"q{n}"},
                         {"role": "assistant", "content": f"answer {n}"}]}  # fmt: skip


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_is_read_checked_hashed_and_measured(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "chats.jsonl", [_chat(n) for n in range(10)])
    data = read_local_data(str(path), SFT)
    assert (data.rows, data.columns, data.format) == (10, ("messages",), "json")
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data.files[0].remote_name == "part-00000.jsonl"
    assert data.lengths is not None and data.lengths.unit == "characters"
    assert data.lengths.minimum == len("q0\nanswer 0") and data.lengths.maximum == len(
        "q9\nanswer 9"
    )
    assert LocalData.from_json(json.loads(json.dumps(data.to_json()))) == data


def test_a_json_array_csv_and_parquet_read_alike(tmp_path: Path) -> None:
    rows = [{"problem": f"{n}+1?", "solution": str(n + 1)} for n in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    with open(tmp_path / "b.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["problem", "solution"])
        writer.writeheader()
        writer.writerows(rows)
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    for name, fmt in (("a.json", "json"), ("b.csv", "csv"), ("c.parquet", "parquet")):
        data = read_local_data(str(tmp_path / name), GRPO)
        assert (data.rows, data.columns, data.format) == (5, ("problem", "solution"), fmt)


def test_a_folder_is_its_files_in_order_and_one_format(tmp_path: Path) -> None:
    _jsonl(tmp_path / "b.jsonl", [_chat(1)])
    _jsonl(tmp_path / "a.jsonl", [_chat(2), _chat(3)])
    (tmp_path / "notes.txt").write_text("not data")
    data = read_local_data(str(tmp_path), SFT)
    assert [Path(f.local).name for f in data.files] == ["a.jsonl", "b.jsonl"]
    assert [f.remote_name for f in data.files] == ["part-00000.jsonl", "part-00001.jsonl"]
    assert data.rows == 3 and len(data.sha256) == 64
    (tmp_path / "c.csv").write_text("messages\nx\n")
    with pytest.raises(ConfigError, match="mixes formats"):
        read_local_data(str(tmp_path), SFT)


@pytest.mark.parametrize(
    ("rows", "rule", "said"),
    [
        ([{"text": ""}], SFT, "line 1: column 'text' is empty"),
        ([{"prompt": "p", "completion": 3}], SFT, "column 'completion' must be text, got a number"),
        ([_chat(1), {"messages": [{"role": "robot", "content": "x"}]}], SFT,
         "line 2: column 'messages': turn 1 has role 'robot'"),
        ([{"messages": "hi"}], SFT, "must be a list of {role, content} turns, got text"),
        ([{"problem": "1+1?"}], GRPO, "column 'solution' missing"),
        ([{"question": "1+1?", "solution": "2"}], GRPO,
         "column 'problem' missing (--dataset-prompt-column names another)"),
        ([{"problem": "1+1?", "solution": "2"}, {"problem": "2+2?", "solution": ""}], GRPO,
         "line 2: column 'solution' is empty"),
    ],
)  # fmt: skip
def test_a_row_that_cannot_train_is_named(
    tmp_path: Path, rows: list[dict[str, object]], rule: ColumnRule, said: str
) -> None:
    path = _jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(ConfigError) as refused:
        read_local_data(str(path), rule)
    assert said in refused.value.message and str(path) in refused.value.message


def test_missing_and_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_local_data(str(tmp_path / "nope.jsonl"), SFT)
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ConfigError, match="is not a data file thinnka reads"):
        read_local_data(str(tmp_path / "d.txt"), SFT)
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "\xff"}\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_local_data(str(tmp_path / "bad.jsonl"), SFT)


def test_size_limits_warn_then_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [_chat(n) for n in range(50)])
    size = path.stat().st_size
    monkeypatch.setattr(local_module, "WARN_DATA_BYTES", size - 1)
    data = read_local_data(str(path), SFT)
    assert data.warnings and "private Hub data set" in data.warnings[0]
    monkeypatch.setattr(local_module, "MAX_DATA_BYTES", size - 1)
    with pytest.raises(ConfigError, match="Push it as a private Hub data set"):
        read_local_data(str(path), SFT)


def test_lengths_in_tokens_when_a_tokenizer_is_given(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a b c"}, {"text": "a"}])
    data = read_local_data(str(path), SFT, measure=lambda ts: [len(t.split()) for t in ts],
                           unit="tokens")  # fmt: skip
    assert data.lengths is not None
    assert (data.lengths.unit, data.lengths.minimum, data.lengths.maximum) == ("tokens", 1, 3)


def test_upload_puts_the_files_then_keeps_what_the_pod_holds(
    sshd_pod: FakeSshd, tmp_path: Path
) -> None:
    path = _jsonl(tmp_path / "chats.jsonl", [_chat(n) for n in range(3)])
    data = read_local_data(str(path), SFT)
    run_dir = tmp_path / "pod" / "run"
    target = SshTarget(sshd_pod.host, sshd_pod.port, sshd_pod.user, sshd_pod.private_key_path)
    with connect(target, deadline=time.monotonic() + 20) as shell:
        assert upload_data(shell, data, str(run_dir)) == (1, 0)
        uploaded = run_dir / "data" / "train" / "part-00000.jsonl"
        assert uploaded.read_bytes() == path.read_bytes()
        assert upload_data(shell, data, str(run_dir)) == (0, 1)  # same hash: not sent again
        uploaded.write_text("damaged")
        assert upload_data(shell, data, str(run_dir)) == (1, 0)  # a different hash: sent
        assert uploaded.read_bytes() == path.read_bytes()
        path.write_text(path.read_text() + json.dumps(_chat(9)) + "\n")
        uploaded.unlink()
        with pytest.raises(ConfigError, match="changed since the run was made"):
            upload_data(shell, data, str(run_dir))

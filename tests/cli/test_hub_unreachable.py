"""`plan` and `run` with a Hub that cannot be reached: one clear line, no traceback.

Runs the real program as a subprocess; `.ci/run` also runs this file under huggingface_hub
2.x (HTTP through httpx2), the version a fresh `pip install .` gets.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
PLAN = ["--repo-id", "Qwen/Qwen2.5-0.5B-Instruct", "--sft", "--trainer", "trl"]


def closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def thinnka(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
            "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "thinnka", *args],
        cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def assert_one_clear_line(text: str, endpoint: str) -> None:
    assert "Traceback" not in text, text
    hits = [line for line in text.splitlines() if "cannot be reached" in line]
    assert len(hits) == 1, text
    assert f"Hub at {endpoint} cannot be reached" in hits[0] and "HF_ENDPOINT" in hits[0]


def test_plan_exits_2_with_one_line_naming_the_endpoint(tmp_path: Path) -> None:
    endpoint = closed_endpoint()
    result = thinnka(tmp_path, "plan", *PLAN, HF_ENDPOINT=endpoint)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert_one_clear_line(result.stderr, endpoint)


def test_run_exits_1_without_a_pod(tmp_path: Path) -> None:
    endpoint = closed_endpoint()
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (tmp_path / ".env").write_text(
        "RUNPOD_API_KEY=rpa_canary\n"
        f"RUNPOD_API_BASE_URL={closed_endpoint()}\n"  # nothing may reach Runpod either
        "HF_TOKEN=hf_canarytoken\n"
        f"SSH_PUBLIC_KEY={(tmp_path / 'id_ed25519.pub').read_text().strip()}\n"
        f"SSH_PRIVATE_KEY_PATH={key}\n"
    )
    result = thinnka(tmp_path, "run", *PLAN, HF_ENDPOINT=endpoint)
    assert result.returncode == 1, result.stderr
    assert_one_clear_line(result.stdout + result.stderr, endpoint)
    assert "pod cost $0.0000" in result.stdout + result.stderr

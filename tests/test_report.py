"""`thinnka report`: one self-contained HTML page, rendered by a real headless Chromium."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.cli.test_console import _store, _training_run
from thinnka.cli import app
from thinnka.cli.exit_codes import run_app
from thinnka.events.metrics import ingest_metrics

DATA = Path(__file__).parent / "data"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def _png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines) of a PNG, read with the standard library only."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, width, height = 8, b"", 0, 0
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    return width, height, zlib.decompress(idat)


def _report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, Path]:
    store = _store(workdir)
    run_id = _training_run(store)
    local = workdir / "state" / "runs" / run_id / "remote.log"
    local.parent.mkdir(parents=True)
    shutil.copy(DATA / "trl_grpo_remote.log", local)
    ingest_metrics(store.metrics, run_id, local)
    target = workdir / "out.html"
    assert run_app(app, ["report", run_id, "--output", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    return run_id, target


def test_the_report_is_self_contained_and_has_every_part(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, target = _report(workdir, capsys)
    page = target.read_text()
    for forbidden in ("<script", "<link", "src=", "url(", "@import", "@font-face", "http"):
        assert forbidden not in page, forbidden
    for expected in ("Summary", "Timeline", "Cost", "Plan", "Metrics", run_id, "provisioned",
                     "NVIDIA L40S", "$0.86/hour", "rewards/format_reward/mean"):  # fmt: skip
        assert expected in page, expected
    metrics = _store(workdir).metrics.series(run_id)
    assert page.count("<svg") == len(metrics) > 20  # every metric plotted


def test_report_to_a_missing_folder_is_a_clear_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _training_run(_store(workdir))
    assert run_app(app, ["report", run_id, "--output", str(workdir / "no" / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_app(app, ["report", "r-nope00"]) == 2


@pytest.mark.timeout(120)
def test_chromium_renders_the_report_and_its_screenshot_is_not_blank(
    workdir: Path, capsys: pytest.CaptureFixture[str], in_ci: bool
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if in_ci:
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("chromium is not installed")
    _, target = _report(workdir, capsys)
    profile = workdir / "chromium-profile"
    profile.mkdir()
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*base, "--dump-dom", target.as_uri()], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    assert "<svg" in dom and "Timeline" in dom and "rewards/format_reward/mean" in dom
    shot = workdir / "report.png"
    subprocess.run([*base, "--window-size=1200,1400", f"--screenshot={shot}", target.as_uri()],
                   capture_output=True, timeout=60, check=True)  # fmt: skip
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1400)
    assert len(set(pixels)) > 50, "the screenshot is blank"

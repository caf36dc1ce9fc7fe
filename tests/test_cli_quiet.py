"""``-q`` means one thing in every command: no progress, summary or informational lines; warnings, errors and the
result still show. Scripts (cron, CI, a shell pipeline) pass it to keep their logs to what needs a look."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from media import make_video, read_video, write_scene_picture

from birefvid.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


# `birefvid` as the console script runs it, with the red-key test module in place of the model it loads: the smallest
# model that shows a first run's export and compile (~7 s of CPU to export, where pvt_v2_b0's took ~40)
_WITH_RED_KEY = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from process_fixtures import RedKey
from birefvid.runtime import Segmenter, file_job
file_job.segmenter_for = lambda *a, **k: Segmenter(module=RedKey(), resolution=64, device="cpu", precision="fp32", backend="openvino")
from birefvid.cli import console
console()
"""


def _birefvid(*args: str, cache: Path, timeout: float = 300, red_key: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "BIREFVID_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    command = ["-c", _WITH_RED_KEY] if red_key else ["-m", "birefvid"]
    return subprocess.run([sys.executable, *command, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_quiet_first_run_leaves_out_the_export_and_compile_notices_but_keeps_warnings(tmp_path, pvt_b0_weights):
    """A first run's eight `birefvid: exporting ...`, `export step ...` and `compiling ...` lines printed under -q,
    so a cron job mailed them and a CI log filled with them, while -q's help said "no progress output"."""
    clip = make_video(tmp_path / "clip.mp4", n_frames=4, size=(64, 48), with_audio=False).path
    out = tmp_path / "out.mov"
    run = _birefvid("process", str(clip), "-o", str(out), "--weights", str(pvt_b0_weights), "--resolution", "64",
                    "--backend", "openvino", "--fps", "30", "-q", cache=tmp_path / "cache", red_key=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: warning: --fps sets an image sequence's frame rate"), lines  # the warning stays
    assert run.stdout == ""
    assert len(read_video(out).images) == 4
    assert any((tmp_path / "cache" / "onnx").glob("*.onnx")), "the run exported the model: the notices had something to say"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_takes_quiet_after_it_and_before_it(command):
    """`models -q` and `serve -q` were "unrecognized arguments: -q": a script passing -q to each command it runs failed
    on those two; and `birefvid -q COMMAND`, where -v is taken, was refused everywhere."""
    from birefvid.cli import build_parser

    parser = build_parser()
    needed = {"process": ["a.mp4", "-o", "b.mov"], "batch": ["in/", "-o", "out/"], "live": ["--source", "0"],
              "image": ["a.jpg", "-o", "b.png"], "eval": ["pred.mkv", "gt/"], "export": ["m.onnx"],
              "train": ["--data", "d/", "-o", "t/", "--steps", "1"]}.get(command, [])  # fmt: skip
    assert parser.parse_args([command, *needed, "-q"]).quiet is True
    before = parser.parse_args(["-q", command, *needed])
    assert before.quiet_before_command is True and not getattr(before, "quiet", False)  # cli._main joins the two
    assert parser.parse_args([command, *needed]).quiet_before_command is False


def test_quiet_before_the_command_is_the_command_s_quiet(tmp_path, pvt_b0_weights):
    """`birefvid -q image ...` runs as `birefvid image ... -q`: the picture written, no `wrote ...` line."""
    picture = write_scene_picture(tmp_path / "in.png")
    run = _birefvid("-q", "image", str(picture), "-o", str(tmp_path / "out.png"), "--weights", str(pvt_b0_weights),
                    "--resolution", "64", "--backend", "torch", cache=tmp_path / "cache", timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.png").stat().st_size > 0
    assert run.stderr == "" and run.stdout == ""


def test_quiet_keeps_the_network_preview_s_token_url(tmp_path):
    """`live -q --sink http://0.0.0.0:PORT` printed nothing: the preview's URL is a notice (no "warning:"), and -q left
    notices out, but that line is the one place the token other machines need is shown, so a -q run's preview could not
    be opened from the machine it was meant for."""
    clip = make_video(tmp_path / "cam.mp4", n_frames=3, size=(64, 48), with_audio=False).path
    env_token = {k: v for k, v in os.environ.items() if k != "BIREFVID_PREVIEW_TOKEN"}
    run = subprocess.run([sys.executable, "-m", "birefvid", "-q", "live", "--source", str(clip), "--sink", "http://0.0.0.0:0",
                          "--model", "tiny", "--device", "cpu", "--resolution", "64"], capture_output=True, text=True,
                         timeout=300, env={**env_token, "BIREFVID_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    token = (tmp_path / "cache" / "preview-token").read_text().strip()
    lines = run.stderr.splitlines()  # a `birefvid: hint:` may come too, on a loaded machine: it is no information line
    [line] = [line for line in lines if "live preview at" in line]
    assert line.startswith("birefvid: live preview at http://127.0.0.1:") and f"?token={token} " in line
    assert not any(line.startswith("live: showed") for line in lines), lines  # -q's summary still left out

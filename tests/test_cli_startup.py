"""`birefvid --help`, `--version` and argument errors answer without loading torch or the media stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import birefvid


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


# run in a fresh interpreter: the test process itself has imported torch long ago. Several commands run in one
# interpreter, one after another (an interpreter's start is most of each one's time): each one's output goes to a
# file of its own through file descriptors 1 and 2 (what the command line writes to, whatever sys.stdout is), and the
# heavy modules are listed after each, so one that imports any is named, even where those after it import none.
_PROBE = """
import json, os, sys, tempfile
from birefvid.cli import main
said = os.dup(2)
for argv in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
        sys.stdout.flush()
        sys.stderr.flush()
        out.seek(0)
        text = out.read().decode()
    heavy = sorted(m for m in ("torch", "av", "cv2", "numpy", "kornia", "huggingface_hub") if m in sys.modules)
    os.write(said, (json.dumps({"code": code, "heavy": heavy, "out": text}) + "\\n").encode())
"""


def _probes(*argvs: list[str]) -> list[tuple[dict, str]]:
    """Each of ``argvs`` run through ``birefvid.cli.main`` in turn in one fresh interpreter: ``({"code": its exit
    status, "heavy": the heavy modules imported so far}, its standard output and error)`` for each."""
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argvs)], capture_output=True, text=True, timeout=120)
    facts = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert len(facts) == len(argvs), result.stderr[-3000:]
    return [(f, f.pop("out")) for f in facts]


def _probe(*argv: str) -> tuple[dict, str]:
    """``birefvid ARGV`` as ``_probes`` runs it, alone in its interpreter."""
    return _probes(list(argv))[0]


def test_version_prints_the_package_version():
    facts, out = _probe("--version")
    assert facts["code"] == 0 and out.strip() == f"birefvid {birefvid.__version__}"
    assert facts["heavy"] == []


def test_help_of_every_command_imports_nothing_heavy():
    argvs = (["--help"], ["process", "--help"], ["live", "--help"], ["image", "--help"], ["eval", "--help"], ["train", "--help"], ["models", "--help"])
    for argv, (facts, out) in zip(argvs, _probes(*argvs)):
        assert facts["code"] == 0 and "usage: birefvid" in out
        assert facts["heavy"] == [], f"{' '.join(argv)} imported {facts['heavy']}"


def test_bare_command_lists_the_commands():
    facts, out = _probe()
    assert facts["code"] == 2 and facts["heavy"] == []
    assert "usage: birefvid" in out and all(name in out for name in ("process", "live", "batch", "image", "eval"))


def test_argument_errors_answer_without_heavy_imports():
    facts, out = _probe("process", "in.mp4", "--output", "sparkles", "-o", "x.mov")
    assert facts["code"] == 2 and "invalid choice: 'sparkles'" in out
    assert facts["heavy"] == []


def test_bad_job_options_answer_without_heavy_imports():
    """Options argparse cannot check (they depend on each other) are checked by the job, still before torch."""
    cases = (
        (["live", "--source", "cam.mp4"], "give at least one --sink"),
        (["live", "--source", "cam.mp4", "--sink", "o.mp4", "--effect", "replace"], "--effect replace needs --background"),
        (["process", "in.mp4", "-o", "o.mp4", "--output", "green", "--key-color", "nope"], "not a colour: 'nope'"),
    )
    for (argv, words), (facts, out) in zip(cases, _probes(*(argv for argv, _ in cases))):
        assert facts["code"] == 2 and words in out, out
        assert facts["heavy"] == [], f"{' '.join(argv)} imported {facts['heavy']}"


def _mistakes(tmp: str) -> tuple[tuple[list[str], str], ...]:
    """Typical mistakes, one a command, each with the words of its one error line; ``tmp``: a folder holding nothing."""
    missing = f"{tmp}/missing/r.json"  # a folder that does not exist
    return (
        (["process", "in.mp4", "-o", "o.mkv", "--start", "abc"], "argument --start: 'abc' is not a time"),
        (["process", "in.mp4", "-o", "o.mkv", "--start", "5", "--end", "2"], "--end (2 s) must come after --start (5 s)"),
        (["batch", "clips", "-o", "out", "--ray", "clip.mp4"], "--ray 'clip.mp4' is not a Ray address"),
        (["batch", "clips", "-o", "out", "--chunk-frames", "-1"], "--chunk-frames must be >= 0, got -1"),
        (["export", "-o", "model.mkv"], "the output must end in .onnx, got model.mkv"),
        (["models", "--download", "nosuch"], "unknown model 'nosuch'; known models:"),
        (["live", "--source", "cam.mp4", "--sink", "o.mkv", "--report", missing], "--report folder does not exist"),
        (["live", "--source", "cam.mp4", "--sink", "o.mkv", "--report", "-", "--stats-json", "-"], "both write to standard output"),
        (["image", "in.png", "-o", "o.png", "--quality", "0"], "--quality must be 1 to 100"),
        (["image", "in.png", "-o", "o.png", "--report", missing], "--report folder does not exist"),
        (["train", "--data", "scenes", "-o", f"{tmp}/run", "--steps", "1", "--size", "50"], "--size 50 must be a multiple of 32"),
        (["train", "--data", "scenes", "-o", f"{tmp}/run", "--steps", "1", "--lr", "inf"], "--lr must be above 0 and finite"),
        (["eval", "pred.mkv", "truth", "--threshold", "2"], "--threshold 2.0 must be in (0, 1]"),
    )


def test_mistakes_each_command_checks_itself_answer_without_heavy_imports(tmp_path):
    """Each was one line only after torch, PyAV and OpenCV were imported (1.5-2.5 s of CPU on 2 cores, 4.5 s for bench):
    the time was parsed in io/trim.py, io/__init__ imported every source and sink for io.atomic's checks, batch, image,
    live, train and eval imported their runtime before checking their options, and the model registry imported the
    backbones. A user who mistyped waited for that, and so did every test of such a message."""
    cases = _mistakes(str(tmp_path))
    for (argv, words), (facts, out) in zip(cases, _probes(*(argv for argv, _ in cases))):
        assert facts["code"] == 2 and words in out, (argv, out)
        assert facts["heavy"] == [], f"{' '.join(argv)} imported {facts['heavy']}"
    assert sorted(tmp_path.iterdir()) == []  # nothing made


def test_a_missing_input_answers_without_heavy_imports(tmp_path):
    """The commonest mistake, a mistyped input name, was one line only after torch, PyAV and OpenCV were imported
    (1.5-3 s): the runtime that opens the input imports them at the top. `process`, `image`, `batch` and `live` now make
    the run's first checks and then look for the input file themselves; with other mistakes too (an output that
    exists, an unknown model) the line is still the one the run gives, the input's, and a mistake the run finds first
    (a --report folder that does not exist, a recording that would replace the source) is still said first."""
    (tmp_path / "existing.webm").write_bytes(b"kept")
    (tmp_path / "in.mp4").write_bytes(b"")  # never read: each run stops before
    missing, existing, report = str(tmp_path / "missing.mp4"), str(tmp_path / "existing.webm"), str(tmp_path / "nowhere" / "r.json")
    picture, clip = str(tmp_path / "missing.png"), str(tmp_path / "in.mp4")
    live_hint = (" (a live source is a camera index like 0, a device path like /dev/video0, a stream URL like rtsp://host/path, "
                 "or a video file)")  # fmt: skip
    cases = (
        (["process", missing, "-o", str(tmp_path / "out.webm")], f"input not found: {missing}"),
        (["process", missing, "-o", existing, "--model", "nosuch"], f"input not found: {missing}"),
        (["process", missing, "-o", existing, "--also", f"mask={tmp_path / 'matte.mkv'}", "--report", "-"], f"input not found: {missing}"),
        (["process", missing, "-o", missing, "--report", report], "--report folder does not exist"),
        (["image", picture, "-o", str(tmp_path / "cut.png"), "--model", "nosuch"], f"input not found: {picture}"),
        (["image", clip, picture, "-o", str(tmp_path / "cuts")], f"input not found: {picture}"),
        (["batch", missing, "--output-dir", str(tmp_path / "out"), "--model", "nosuch"], f"input not found: {missing}"),
        (["batch", clip, missing, "--output-dir", str(tmp_path / "out")], f"input not found: {missing}"),
        (["live", "--source", missing, "--sink", existing, "--model", "nosuch"], f"input not found: {missing}{live_hint}"),
        (["live", "--source", missing, "--sink", missing, "--overwrite"], f"input not found: {missing}{live_hint}"),
        (["live", "--source", clip, "--sink", clip, "--overwrite"], f"writing {clip} would replace {clip}, which this run reads"),
    )
    for (argv, words), (facts, said) in zip(cases, _probes(*(argv for argv, _ in cases))):
        assert facts["code"] == 2 and said.startswith(f"birefvid: error: {words}") and said.count("\n") == 1, (argv, said)
        assert facts["heavy"] == [], f"{' '.join(argv)} imported {facts['heavy']}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.webm", "in.mp4"]  # nothing made, the existing output kept
    assert (tmp_path / "existing.webm").read_bytes() == b"kept"


def test_batch_says_an_output_folder_link_loop_before_a_missing_input(tmp_path):
    """``expand_inputs`` reads the output folder's manifest first, and an output it lists that is a link in a loop is
    its error; the light check for a missing input said 'input not found' there instead (a second mistake the run
    never reached). It now reads the manifest first too, still before the heavy imports."""
    out = tmp_path / "out"
    (out / ".birefvid-batch").mkdir(parents=True)
    (out / ".birefvid-batch" / "manifest.json").write_text('{"videos": {"x.mkv": {}}}')
    (out / "x.mkv").symlink_to("x.mkv")  # a link to itself, where an output was
    missing = str(tmp_path / "missing.mp4")
    facts, said = _probe("batch", missing, "--output-dir", str(out))
    assert facts["code"] == 2 and said.startswith(f"birefvid: error: {out / 'x.mkv'} is a symbolic link in a loop"), said
    assert facts["heavy"] == [], facts["heavy"]


def test_an_input_name_too_long_is_one_line(tmp_path):
    """An input whose name no file system takes (over 255 bytes) was a traceback, exit 1, in every command (its
    first look, Path.exists, raised OSError 'File name too long'): now one line, exit 2, before the heavy imports."""
    long_name = str(tmp_path / ("a" * 300 + ".mp4"))
    cases = (["process", long_name, "-o", str(tmp_path / "out.webm")], ["batch", long_name, "--output-dir", str(tmp_path / "out")],
             ["image", long_name[:-4] + ".png", "-o", str(tmp_path / "cut.png")], ["live", "--source", long_name, "--sink", str(tmp_path / "rec.mkv")])  # fmt: skip
    for argv, (facts, said) in zip(cases, _probes(*cases)):
        assert facts["code"] == 2 and said.startswith("birefvid: error: cannot use ") and said.count("\n") == 1, (argv, said)
        assert "304 bytes long, over the 255" in said, said
        assert facts["heavy"] == [], f"{' '.join(argv)} imported {facts['heavy']}"
    assert list(tmp_path.iterdir()) == []


def test_models_lists_the_variants_without_torch():
    """`birefvid models` read the cards through models/__init__, which imported torch for the backbones' names."""
    facts, out = _probe("models")
    assert facts["code"] == 0 and "tiny" in out and "general" in out
    assert facts["heavy"] == []


def test_an_argument_error_is_one_birefvid_error_line():
    """README: bad input gives one line starting `birefvid: error:`. A mistyped option printed the command's
    whole usage (20 lines for process) and then `birefvid process: error: ...`, which a grep missed."""
    cases = (
        (["process", "in.mp4", "-o", "x.mov", "--output", "sparkles"], "argument --output: invalid choice: 'sparkles'"),
        (["process", "in.mp4"], "the following arguments are required: -o/--out"),
        (["models", "--foo"], "unrecognized arguments: --foo"),
    )
    for (argv, words), (facts, out) in zip(cases, _probes(*(argv for argv, _ in cases))):
        lines = out.strip().splitlines()
        assert facts["code"] == 2 and len(lines) == 1 and lines[0].startswith("birefvid: error: ") and words in lines[0], out


def test_every_help_fits_80_columns(monkeypatch):
    """--backend's and --backbone's choices in the usage made process, bench and train --help 83 to 116 columns wide."""
    from birefvid.cli import build_parser

    monkeypatch.setenv("COLUMNS", "80")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in {"birefvid": parser, **commands}.items():
        wide = [line for line in command.format_help().splitlines() if len(line) > 80]
        assert wide == [], f"{name} --help: {wide}"


def test_python_dash_m_birefvid_runs_the_command(tmp_path):
    # where pip's scripts folder is not on PATH (a --user install, Windows), `python -m birefvid` is the way in
    version = subprocess.run([sys.executable, "-m", "birefvid", "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"birefvid {birefvid.__version__}"
    bad = subprocess.run([sys.executable, "-m", "birefvid", "process"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("usage: birefvid process"), bad.stderr


_HOMELESS = """
import logging
from birefvid.cli import _fill_home, _log_handler
_fill_home()
logging.basicConfig(level=logging.WARNING, handlers=[_log_handler(False)])
import openvino
from birefvid.backends.export import cache_dir
print(cache_dir())
"""


def test_a_random_uid_without_home_imports_openvino_quietly():
    """OpenShift runs an image as a random uid with no passwd entry; with HOME unset too (``env -i``)
    `import openvino`, on the default backend's path, raised "Could not determine home directory" (exit
    1), and with HOME=/ it logged three `root: warning:` lines about its telemetry file in every run."""
    import os

    import pytest

    pytest.importorskip("openvino")
    import shutil

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another uid")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(sys.path)}
    as_random_uid = ["setpriv", "--reuid=1000650000", "--regid=0", "--clear-groups"]
    result = subprocess.run([*as_random_uid, sys.executable, "-c", _HOMELESS], env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    assert result.stdout.strip() == "/.cache/birefvid"  # not writable there: the run falls back to /tmp/birefvid-cache-UID


_TELEMETRY_PROBE = """
import multiprocessing, sys, time
from birefvid.cli import main
sys.argv = ["birefvid", "-q", "models"]
code = main()
import openvino  # what a CPU run's default backend imports next
time.sleep(0.2)
print(code, len(multiprocessing.active_children()))
"""


def test_the_command_line_sends_no_openvino_telemetry(tmp_path):
    """`import openvino` sends a usage event to Google Analytics, consent assumed where no consent file exists: every
    CPU run from a cron job or a service wrote ~/intel/openvino_ga_cid and ~/intel/stats, opened a connection out and
    forked a child, whose KeyboardInterrupt traceback landed in the log when Ctrl-C came while it was sending."""
    pytest.importorskip("openvino")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}  # OpenVINO sends nothing in CI
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", _TELEMETRY_PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["0", "0"]  # the command's status; no child sending
    assert sorted(p.name for p in home.rglob("*")) == []  # no ~/intel/openvino_ga_cid


def test_a_memory_limit_too_low_for_torch_is_one_line(tmp_path):
    """Under `ulimit -v` (a cron job's or a batch system's limit) torch's libraries could not be mapped: an
    ImportError traceback and exit 1, which the README calls a bug, for what is a limit to raise."""
    import resource

    from media import make_video

    clip = make_video(tmp_path / "clip.mp4", n_frames=2, with_audio=False).path
    limit = 1 << 30  # 1 GiB of address space: Python and birefvid start, torch's libraries do not fit

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "birefvid", "process", str(clip), "-o", str(tmp_path / "out.mkv"),
                             "--model", "tiny", "--resolution", "64"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, preexec_fn=limited)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error: out of memory:") and "ulimit -v" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize("limit", [None, 1 << 40])
def test_a_library_on_a_noexec_mount_is_not_called_out_of_memory(tmp_path, limit):
    """glibc's "failed to map segment from shared object" is also what a library on a file system mounted noexec gets
    (a hardened /tmp or home holding the virtual environment): it was said as "out of memory ... `ulimit -v` ... raise
    it", with no memory limit set, and still with a limit far above what the run needs (1 TB of address space here; a
    batch system's `ulimit -v` beside a noexec /tmp). A real extension module on a real noexec tmpfs, imported under
    guarded()."""
    import importlib.machinery
    import resource
    import shutil
    import _json

    from fs_fixtures import _mounted

    with _mounted(tmp_path / "noexec", "noexec,size=16m") as folder:
        shutil.copy(_json.__file__, folder / f"_json{importlib.machinery.EXTENSION_SUFFIXES[0]}")
        code = (f"import sys; sys.path.insert(0, {str(folder)!r}); sys.modules.pop('_json', None); "
                "from birefvid.cli import guarded; sys.exit(guarded('birefvid', lambda: __import__('_json')))")
        limited = None if limit is None else (lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, preexec_fn=limited)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error: cannot load a library:"), lines
    assert "failed to map segment" in lines[0] and "noexec" in lines[0] and "out of memory" not in lines[0], lines


def test_live_takes_its_secret_addresses_from_a_file(tmp_path):
    """A service's camera password and stream key were on its command line, which every user of the machine
    sees with ps: the only way to give them. `birefvid live @FILE` reads the arguments from FILE, one a line."""
    from birefvid.cli import build_parser

    args_file = tmp_path / "gate.args"
    args_file.write_text("--source\nrtsp://admin:hunter2@cam.local/1\n--sink=rtmp://a.rtmp.youtube.com/live2/KEY-1234\n")
    args = build_parser().parse_args(["live", f"@{args_file}", "--sink", "rec.mkv"])
    assert args.source == "rtsp://admin:hunter2@cam.local/1"
    assert args.sink == ["rtmp://a.rtmp.youtube.com/live2/KEY-1234", "rec.mkv"]


def test_live_arguments_file_takes_an_option_and_its_value_on_one_line(tmp_path):
    """`--source rtsp://...` on one line was one unknown word ("required: --source"), and a blank line an empty
    argument ("unrecognized arguments:"), though the file said what to do."""
    from birefvid.cli import build_parser

    args_file = tmp_path / "gate.args"
    args_file.write_text("--source rtsp://admin:pass word@cam.local/1\n\n--effect\ngreen\n--sink=gate.mkv\n--no-audio \n\n")
    args = build_parser().parse_args(["live", f"@{args_file}"])
    assert args.source == "rtsp://admin:pass word@cam.local/1"
    assert args.effect == "green" and args.sink == ["gate.mkv"] and args.no_audio


def test_live_arguments_file_as_users_write_it(tmp_path):
    """A file from Windows Notepad (a BOM, CRLF), with a comment, a quoted file name with a space and spaces left at
    line ends: each stopped the run ("required: --source", "unrecognized arguments: # ...", "invalid choice: 'blur  '",
    a background named with its quotes)."""
    from birefvid.cli import build_parser

    args_file = tmp_path / "gate.args"
    args_file.write_bytes("\ufeff--source rtsp://admin:PW@cam.local/1\r\n# the gate camera, at night\r\n  --effect=replace  \r\n"
                          "--background \"my beach.jpg\"\r\n--key-color\r\n#00b140\r\n--sink='gate.mkv'\r\n".encode())  # fmt: skip
    args = build_parser().parse_args(["live", f"@{args_file}"])
    assert args.source == "rtsp://admin:PW@cam.local/1" and args.effect == "replace"
    assert args.background == "my beach.jpg" and args.key_color == "#00b140" and args.sink == ["gate.mkv"]


def test_live_arguments_file_refuses_a_pasted_command_line(tmp_path, capsys):
    """`--source URL --effect green` on one line made the source "URL --effect green" (a camera that never answered)
    and left the effect unset: the line is refused, without echoing the password in it."""
    from birefvid.cli import build_parser

    args_file = tmp_path / "gate.args"
    args_file.write_text("--source rtsp://admin:hunter2@cam.local/1 --effect green\n")
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["live", f"@{args_file}", "--sink", "rec.mkv"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "--source and --effect" in err and "hunter2" not in err


@pytest.mark.parametrize("command", ["process", "image", "batch", "eval", "bench", "export", "train", "models"])
def test_every_command_takes_an_arguments_file(tmp_path, command):
    """Only live read @FILE: `process https://user:PW@host/talk.mp4` had its login on the command line, which ps shows
    every user, with no other way to give it. Every command reads one now, as live does."""
    from birefvid.cli import build_parser

    args_file = tmp_path / "run.args"
    args_file.write_text("# a comment\n-v\n")
    rest = {"process": ["in.mp4", "-o", "out.mkv"], "image": ["in.png", "-o", "out.png"], "batch": ["clips", "--output-dir", "out"],
            "eval": ["pred.mkv", "truth"], "bench": [], "export": ["-o", "m.onnx"], "train": ["--data", "d", "-o", "r", "--steps", "1"], "models": []}[command]  # fmt: skip
    args = build_parser().parse_args([command, f"@{args_file}", *rest])
    assert args.verbose is True


def test_process_takes_its_whole_command_from_an_arguments_file(tmp_path, pvt_b0_weights, capsys):
    """The whole run from a file, one argument a line (the input could be a URL with a login); the file's own
    path is the only thing on the command line."""
    from birefvid.cli import main
    from media import make_video, read_video

    clip = make_video(tmp_path / "in.mp4", n_frames=4, size=(64, 48))
    args_file = tmp_path / "run.args"
    args_file.write_text(f"{clip.path}\n-o {tmp_path / 'out.mkv'}\n--output mask\n--weights {pvt_b0_weights}\n--resolution 64\n-q\n")
    assert main(["process", f"@{args_file}", "--device", "cpu"]) == 0
    assert len(read_video(tmp_path / "out.mkv", "gray").images) == 4


def test_a_file_whose_name_starts_with_at_is_named_with_dot_slash(tmp_path, pvt_b0_weights, capsys, monkeypatch):
    """With @FILE read by every command, `process @clip.mp4` names an arguments file: a video of that name is one error
    line (not a traceback from reading a video as text), which says to write ./@clip.mp4; that form processes it."""
    from birefvid.cli import main
    from media import make_video, read_video

    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "@clip.mp4", n_frames=4, size=(64, 48))
    (tmp_path / "clip.mp4").write_bytes((tmp_path / "@clip.mp4").read_bytes())  # what @clip.mp4 would read: a video, not text
    model = ["--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu", "-q"]
    for missing in ([], ["gone"]):
        if missing:
            (tmp_path / "clip.mp4").unlink()
        with pytest.raises(SystemExit) as stopped:
            main(["process", "@clip.mp4", "-o", "out.mkv", "--output", "mask", *model])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("birefvid: error: @clip.mp4: ")
        assert "is not a text file of arguments" in err if not missing else "cannot read the arguments file clip.mp4" in err
        assert "for a file named @clip.mp4, write ./@clip.mp4" in err
    assert main(["process", "./@clip.mp4", "-o", "./@out.mkv", "--output", "mask", *model]) == 0
    assert len(read_video(tmp_path / "@out.mkv", "gray").images) == 4


def test_an_arguments_file_that_is_a_pipe_is_read_once(tmp_path):
    """`birefvid live @<(pass show gate)` (or `@/dev/stdin`) keeps a password out of every file: the check that an
    @FILE is text read the pipe first, so argparse found it empty and said "required: --source"."""
    from birefvid.cli import build_parser

    reader, writer = os.pipe()
    try:
        os.write(writer, b"--source\nrtsp://admin:hunter2@cam.local/1\n--sink\ngate.mkv\n")
        os.close(writer)
        args = build_parser().parse_args(["live", f"@/dev/fd/{reader}"])
    finally:
        os.close(reader)
    assert args.source == "rtsp://admin:hunter2@cam.local/1" and args.sink == ["gate.mkv"]


# parses its arguments in a fresh interpreter held to 1 GiB, printing the source or the exit code
_PARSE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from birefvid.cli import build_parser
try:
    print(build_parser().parse_args(sys.argv[1:]).source)
except SystemExit as exit:
    print("exit", exit.code)
"""


def test_an_arguments_file_that_is_a_device_is_looked_at_first():
    """`@/dev/zero` (or a disk, `@/dev/sda`) was taken as a pipe, unread, so argparse read it to the end: it never
    ends, and the memory ran out. Like a picture, it is no text file of arguments: one line, exit 2."""
    done = subprocess.run([sys.executable, "-c", _PARSE, "live", "@/dev/zero"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "exit 2", done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == ("birefvid: error: @/dev/zero: /dev/zero is not a text file of arguments; an "
                                                    "argument starting with @ names a file of arguments, one a line; for a file named "
                                                    "@/dev/zero, write ./@/dev/zero")


def test_an_arguments_file_typed_at_a_terminal_is_read_once():
    """`birefvid live @/dev/stdin` at a terminal: the arguments typed, then Ctrl-D, are argparse's to read; a look at
    them first would take that one end of input, and argparse would wait for another."""
    import pty

    leader, follower = pty.openpty()
    try:
        child = subprocess.Popen([sys.executable, "-c", _PARSE, "live", "@/dev/stdin"], stdin=follower, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        os.write(leader, b"--source\nrtsp://cam.local/1\n--sink\ngate.mkv\n\x04")
        try:
            out, err = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # waiting for a second end of input
            child.kill()
            out, err = child.communicate()
    finally:
        os.close(leader)
        os.close(follower)
    assert out.strip() == "rtsp://cam.local/1", err[-2000:]


def test_no_writable_temporary_folder_is_one_error_line(tmp_path):
    """A container with a read-only root file system and no volume at /tmp: torch makes a folder there as it is
    imported, so every command died with a 30-line FileNotFoundError traceback (exit 1, which a restart policy
    retries for ever). Now it is one line saying what to mount or set, exit 2."""
    import os

    from fs_fixtures import read_only_system

    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")  # the command stops before reading it
    env = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", "TEMP", "TMP")}
    argv = read_only_system([sys.executable, "-m", "birefvid", "process", str(clip), "-o", str(tmp_path / "out.webm"), "--model", "tiny"])
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[:3000]
    assert len(lines) == 1 and lines[0].startswith("birefvid: error: no writable temporary folder"), lines
    assert "TMPDIR" in lines[0] and "/tmp" in lines[0]
    assert not (tmp_path / "out.webm").exists()


@pytest.mark.parametrize("value", ["2e9", "2GB", ""])
def test_an_opencv_pixel_limit_opencv_cannot_read_is_one_error_line(tmp_path, value):
    """The error line for a picture too large says to raise OPENCV_IO_MAX_IMAGE_PIXELS; written as 2e9 or 2GB (or set
    empty), OpenCV aborted at `import cv2`: a C++ "terminate called" line, exit 134, in every command, videos too."""
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")  # the command stops before reading it
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": value}
    argv = [sys.executable, "-m", "birefvid", "process", str(clip), "-o", str(tmp_path / "out.mkv"), "--model", "tiny"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"birefvid: error: OPENCV_IO_MAX_IMAGE_PIXELS={value!r} is not a number OpenCV can read (it would stop at once): give "
        "whole pixels, such as 2000000000, or a number followed by KB or MB (times 1024), such as 2000MB; or unset it"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_picture_over_a_limit_set_in_megabytes_is_said_with_that_limit(tmp_path):
    """OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS=1MB as 2^20 pixels; birefvid read it as no number, so a 1.2-megapixel
    picture OpenCV refused got OpenCV's assertion text ("pixels <= CV_IO_MAX_IMAGE_PIXELS") instead of its size."""
    from PIL import Image

    Image.new("RGB", (1000, 1200), (10, 120, 200)).save(tmp_path / "scan.png")
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "1MB"}
    argv = [sys.executable, "-m", "birefvid", "image", str(tmp_path / "scan.png"), "-o", str(tmp_path / "cut.png"), "--model", "tiny"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"birefvid: error: {tmp_path / 'scan.png'} is not a readable image (it is 1000x1200 pixels, 1.2 megapixels, more than "
        "the 1.0 OpenCV decodes; scale it down first, or raise OPENCV_IO_MAX_IMAGE_PIXELS where the memory allows)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.png"]


@pytest.mark.parametrize("value, said", [
    ("0", "OPENCV_IO_MAX_IMAGE_PIXELS=0 lets OpenCV decode no picture at all: 0 is not 'no limit'; raise it, or unset it for "
          "OpenCV's 1,074 megapixels"),
    ("100", "it is 128x96, 12,288 pixels, more than the 100 pixels OpenCV decodes; OPENCV_IO_MAX_IMAGE_PIXELS counts whole "
            "pixels: raise it, or unset it"),
])  # fmt: skip
def test_a_pixel_limit_of_none_or_a_few_pixels_is_said_in_pixels(tmp_path, value, said):
    """OPENCV_IO_MAX_IMAGE_PIXELS=0 (no limit, to many) or 100 (meant as megapixels) makes OpenCV refuse every picture, and
    the line said "it is 128x96 pixels, 0.0 megapixels, more than the 0.0 OpenCV decodes; scale it down first"."""
    from PIL import Image

    Image.new("RGB", (128, 96), (10, 120, 200)).save(tmp_path / "small.png")
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": value}
    argv = [sys.executable, "-m", "birefvid", "image", str(tmp_path / "small.png"), "-o", str(tmp_path / "cut.png"), "--model", "tiny"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [f"birefvid: error: {tmp_path / 'small.png'} is not a readable image ({said})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]


_CPU_RUN = """
import sys
import numpy as np
from birefvid.runtime import Segmenter
for model in (dict(model="tiny"), dict(weights=sys.argv[1])):  # the bundled model, then a .pth file's
    seg = Segmenter(**model, resolution=64, device="cpu", precision="fp32", backend="torch")
    seg(np.zeros((48, 64, 3), np.uint8))
    print(sorted(m for m in ("torchvision", "torch._dynamo") if m in sys.modules), flush=True)
"""


def test_a_cpu_run_never_imports_torchvision(pvt_b0_weights):
    """torchvision.ops (its deformable convolution, which only CUDA and bench's reference run) imports torch._dynamo:
    ~1.5 s of CPU at every start of a run on a CPU, a live window or a batch worker waiting, for an op never called.
    Then a --weights .pth file without metadata, as the official BiRefNet checkpoints are, whose backbone is found by
    building each candidate on the meta device, where the first Swin built imported torch._dynamo too (1.5 s more).
    Both in one interpreter, the modules listed after each: its start (torch's import) is most of the time."""
    done = subprocess.run([sys.executable, "-c", _CPU_RUN, str(pvt_b0_weights)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "[]"], done.stdout

"""`birefvid batch` rerun after a changed option: --overwrite resumes an interrupted run, a new
--chunk-frames or --batch-size dates nothing finished, and manifests of earlier versions stay valid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from test_batch_media import MODEL, events, keyframed_clip, manifest

from birefvid.batch.hooks import CRASH_ENV, CRASH_EXIT_CODE, MARKER_ENV
from birefvid.cli import main


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


FRAMES = 3


def test_an_interrupted_overwrite_run_resumes_when_rerun(tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    keyframed_clip(folder / "a.mp4", FRAMES)
    keyframed_clip(folder / "b.mp4", FRAMES)
    argv = ["batch", str(folder), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    assert main(argv) == 0
    first = (out / "a.mkv").stat().st_mtime_ns

    # the user changes an option: both outputs are out of date, and --overwrite redoes them;
    # the run dies in b.mp4 (a killed process, as Ctrl-C or a crash would leave it), a.mkv redone
    changed = [*argv, "--smooth", "none", "--overwrite"]
    env = {**os.environ, CRASH_ENV: "b.mp4:0", MARKER_ENV: str(tmp_path / "crashed")}
    killed = subprocess.run([sys.executable, "-m", "birefvid.cli", *changed], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    redone = (out / "a.mkv").stat().st_mtime_ns
    assert redone != first

    # without --overwrite, b.mkv is named as the batch's own out-of-date output, not as a file in the way
    assert main([*argv, "--smooth", "none"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'b.mkv'} was made by an earlier batch with other options" in err and "output exists" not in err

    # the same command again resumes: a.mkv, made with these options, is kept; only b.mp4 runs
    log = tmp_path / "p.jsonl"
    assert main([*changed, "--progress-json", str(log)]) == 0
    ev = events(log)
    assert [e["video"] for e in ev if e["event"] == "video_skipped"] == ["a.mkv"]
    assert [e["video"] for e in ev if e["event"] == "chunk_done"] == ["b.mkv"]
    assert (out / "a.mkv").stat().st_mtime_ns == redone


def test_overwrite_still_replaces_a_file_the_batch_did_not_make(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    src = keyframed_clip(tmp_path / "a.mp4", FRAMES)
    (out / "a.mkv").write_bytes(b"someone else's file")
    assert main(["batch", str(src), "--output-dir", str(out), "--output", "mask", "-q", "--overwrite", *MODEL]) == 0
    assert (out / "a.mkv").read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # a Matroska file now
    assert Path(out / "a.mkv").stat().st_size > 100


def test_a_finished_video_is_kept_when_only_the_chunking_changed(tmp_path):
    """--chunk-frames says how to split the work (smaller chunks for more Ray workers), not what
    the output is: a rerun with another value must not call finished videos out of date."""
    src = keyframed_clip(tmp_path / "long.mp4", 2 * FRAMES, gop=FRAMES)
    out, log = tmp_path / "out", tmp_path / "p.jsonl"
    argv = ["batch", str(src), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    assert main([*argv, "--chunk-frames", str(FRAMES)]) == 0
    assert manifest(out)["videos"]["long.mkv"]["chunks"] == 2
    made = (out / "long.mkv").stat().st_mtime_ns
    assert main([*argv, "--chunk-frames", "0", "--progress-json", str(log)]) == 0
    assert [e["event"] for e in events(log)] == ["start", "video_skipped", "end"]
    assert (out / "long.mkv").stat().st_mtime_ns == made
    assert main([*argv, "--chunk-frames", "0", "--smooth", "none"]) == 2  # another job still dates it


def test_a_rerun_does_not_probe_the_videos_it_finished(tmp_path, monkeypatch):
    """Resuming thousands of videos must not first read every finished one's packets again."""
    from birefvid.batch import runner

    src = keyframed_clip(tmp_path / "long.mp4", 2 * FRAMES, gop=FRAMES)
    out, log = tmp_path / "out", tmp_path / "p.jsonl"
    argv = ["batch", str(src), "--output-dir", str(out), "--output", "mask", "--chunk-frames", str(FRAMES), "-q", *MODEL]
    assert main(argv) == 0

    def probe(path):
        raise AssertionError(f"{path} probed again")

    monkeypatch.setattr(runner, "probe_video", probe)
    assert main([*argv, "--progress-json", str(log)]) == 0
    ev = events(log)
    assert [e["event"] for e in ev] == ["start", "video_skipped", "end"]
    assert ev[0]["chunks"] == 2 and ev[-1]["frames_done"] == 2 * FRAMES  # the totals as the first run planned them


def test_a_finished_video_is_kept_when_only_the_batch_size_changed(tmp_path, monkeypatch):
    """--batch-size is a speed setting: a rerun with another value skips what is finished, and a
    manifest written before speed settings were left out of its fingerprint is still honoured."""
    import json

    from birefvid.batch import manifest as manifest_module
    from birefvid.batch import runner

    jobs = []  # the job the batch fingerprints, as the runner sees it
    monkeypatch.setattr(runner, "fingerprint", lambda job, *a, **k: jobs.append(job) or manifest_module.fingerprint(job, *a, **k))
    src = keyframed_clip(tmp_path / "a.mp4", FRAMES)
    out, log = tmp_path / "out", tmp_path / "p.jsonl"
    argv = ["batch", str(src), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    assert main([*argv, "--batch-size", "1"]) == 0
    made = (out / "a.mkv").stat().st_mtime_ns
    assert main([*argv, "--batch-size", "3", "--progress-json", str(log)]) == 0
    assert [e["event"] for e in events(log)] == ["start", "video_skipped", "end"]
    assert (out / "a.mkv").stat().st_mtime_ns == made

    # the fingerprint an earlier version wrote (speed settings included) is re-keyed, not redone
    job = jobs[-1]
    assert job["inference"]["batch_size"] == 3
    path = out / ".birefvid-batch" / "manifest.json"
    data = json.loads(path.read_text())
    entry = data["videos"]["a.mkv"]
    entry["fingerprint"] = "made-with-other-chunks"  # only the job fingerprint can keep it
    entry["job_fingerprint"] = manifest_module.fingerprint(job, str(src), {}, speed=True)
    path.write_text(json.dumps(data))
    log.unlink()
    assert main([*argv, "--batch-size", "3", "--progress-json", str(log)]) == 0
    assert [e["event"] for e in events(log)] == ["start", "video_skipped", "end"]
    assert (out / "a.mkv").stat().st_mtime_ns == made
    assert main([*argv, "--smooth", "none"]) == 2  # a setting that changes the output still dates it


def test_an_output_its_killed_run_did_not_record_is_made_again(tmp_path, capsys):
    """A run killed after an output was renamed into place but before the manifest said so (a Ray
    worker finishes its video as the driver is SIGKILLed): rerun as typed, it resumes, not refuses."""
    import json

    src = keyframed_clip(tmp_path / "a.mp4", FRAMES)
    out, log = tmp_path / "out", tmp_path / "p.jsonl"
    argv = ["batch", str(src), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    assert main(argv) == 0
    path = out / ".birefvid-batch" / "manifest.json"
    data = json.loads(path.read_text())
    data["videos"]["a.mkv"].update(status="pending", chunks_done={})  # what the killed run had recorded
    data["videos"]["a.mkv"].pop("frames")
    path.write_text(json.dumps(data))
    assert main([*argv, "--progress-json", str(log)]) == 0, capsys.readouterr().err
    assert [e["event"] for e in events(log)] == ["start", "chunk_done", "video_done", "end"]
    assert manifest(out)["videos"]["a.mkv"]["status"] == "done"


def test_an_output_that_appears_while_the_batch_runs_does_not_end_it(tmp_path, monkeypatch):
    """After a Ray driver is SIGKILLed its workers finish their chunks for a few seconds, renaming
    outputs into place while the rerun starts: the rerun, which planned those videos, writes them."""
    from birefvid.batch.progress import BatchProgress

    src = keyframed_clip(tmp_path / "a.mp4", FRAMES)
    out = tmp_path / "out"
    start = BatchProgress.start

    def orphan_writes(self, *args, **kwargs):  # after planning, before the chunk runs
        (out / "a.mkv").write_bytes(b"the killed run's worker")
        start(self, *args, **kwargs)

    monkeypatch.setattr(BatchProgress, "start", orphan_writes)
    assert main(["batch", str(src), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]) == 0
    assert (out / "a.mkv").read_bytes()[:4] == b"\x1a\x45\xdf\xa3" and manifest(out)["videos"]["a.mkv"]["status"] == "done"


def test_a_manifest_that_is_no_batch_manifest_is_one_line(tmp_path, capsys):
    """A manifest edited by hand, or overwritten by another program, into JSON of another shape (a list, videos as a
    list or numbers) ended the rerun with an AttributeError traceback, exit 1; it is one line, and the output is kept."""
    import json

    src = keyframed_clip(tmp_path / "a.mp4", 4)
    out = tmp_path / "out"
    argv = ["batch", str(src), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    assert main(argv) == 0
    capsys.readouterr()
    path = out / ".birefvid-batch" / "manifest.json"
    schema = json.loads(path.read_text())["schema"]
    made = (out / "a.mkv").read_bytes()
    for data in ([1, 2], {"schema": schema, "videos": [1]}, {"schema": schema, "videos": {"a.mkv": 5}}, None):
        path.write_text(json.dumps(data))
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == (f"birefvid: error: batch manifest {path} is not a batch manifest (no JSON object of videos); "
                       "remove it to start afresh\n"), err
        assert (out / "a.mkv").read_bytes() == made


def test_an_output_made_from_another_like_named_input_names_that_input(tmp_path, capsys):
    """a.mp4 and a.mov clash; run apart into one folder as the clash error advises, the second was told its
    output was 'made with other options', and the --overwrite it suggested replaced the first video's mask."""
    first, second, out = tmp_path / "in" / "a.mp4", tmp_path / "more" / "a.mov", tmp_path / "out"
    first.parent.mkdir()
    second.parent.mkdir()
    keyframed_clip(first, FRAMES)
    keyframed_clip(second, FRAMES)
    common = ["--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    assert main(["batch", str(first), *common]) == 0
    made = (out / "a.mkv").read_bytes()
    assert main(["batch", str(second), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birefvid: error: {out / 'a.mkv'} was made by an earlier batch from {os.path.realpath(first)}, not from {second}; "
                   f"write {second} to another output folder (--overwrite would replace the other video's output)"]  # fmt: skip
    assert (out / "a.mkv").read_bytes() == made
    # the first input's own rerun with another option is still told its output is out of date
    assert main(["batch", str(first), *common, "--threshold", "0.5"]) == 2
    assert "was made by an earlier batch with other options" in capsys.readouterr().err


def test_a_rerun_with_nothing_left_to_do_says_so(tmp_path, capsys):
    """A rerun that finds every video done said 'batch done: 2/2 videos' and, with a bad input beside
    them, 'the other 2 were processed', though it processed nothing: its lines and JSON now say so."""
    folder, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "p.jsonl"
    folder.mkdir()
    for name in ("a", "b"):
        keyframed_clip(folder / f"{name}.mp4", FRAMES)
    argv = ["batch", str(folder), "--output-dir", str(out), "--output", "mask", *MODEL]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--progress-json", str(log)]) == 0
    assert capsys.readouterr().err.splitlines()[-1].endswith("batch done: nothing left to do, all 2 videos were done in an earlier run")
    end = events(log)[-1]
    assert (end["event"], end["videos_done"], end["videos_skipped"], end["frames_computed"]) == ("end", 2, 2, 0)

    (folder / "c.mp4").write_bytes(b"not a video")
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-2].endswith("batch done: nothing left to do, all 2 videos were done in an earlier run, 1 input failed")
    assert err[-1] == (f"birefvid: error: 1 of 3 inputs were skipped (1 not a readable video): {folder / 'c.mp4'} "
                       "(the other 2 were done in an earlier run, nothing was left to do; the progress lines say why each was skipped)")

    (folder / "d.mp4").write_bytes((folder / "a.mp4").read_bytes())  # new work beside the finished videos
    assert main([*argv, "--progress-json", str(log)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "batch done: 3/3 videos (2 done in an earlier run), 1 input failed, 3 frames computed" in err[-2]
    assert "(of the other 3, 1 was processed and 2 done in an earlier run; " in err[-1]
    end = events(log)[-1]
    assert (end["videos_done"], end["videos_skipped"], end["videos_failed"], end["frames_computed"]) == (3, 2, 1, FRAMES)


def test_a_later_batch_names_the_partial_files_a_killed_run_left(tmp_path, caplog):
    """A run killed while writing b.mkv left .b.partial-*.mkv, hidden, until b.mp4 itself was rerun; a later
    batch into the folder, of other inputs, now names it in one warning (and removes nothing a writer may still fill)."""
    folder, out, marker = tmp_path / "in", tmp_path / "out", tmp_path / "killed"
    folder.mkdir()
    a, b, c = (keyframed_clip(folder / f"{n}.mp4", FRAMES) for n in "abc")
    env = {**os.environ, CRASH_ENV: "b.mp4:0", MARKER_ENV: str(marker)}
    argv = ["--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    killed = subprocess.run([sys.executable, "-m", "birefvid.cli", "batch", str(a), str(b), *argv], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    left = [p for p in out.iterdir() if ".partial-" in p.name]
    assert [p.name.startswith(".b.partial-") for p in left] == [True]

    assert main(["batch", str(c), *argv]) == 0
    warnings = [r.getMessage() for r in caplog.records if "partial file" in r.getMessage()]
    assert len(warnings) == 1 and str(left[0]) in warnings[0] and "rm -rf" in warnings[0], warnings
    assert left[0].exists()  # named, not removed
    caplog.clear()
    assert main(["batch", str(b), *argv]) == 0  # its video rerun removes it
    assert not left[0].exists() and not [r for r in caplog.records if "partial file" in r.getMessage()]


def test_a_rerun_removes_the_partial_a_killed_run_left_where_a_linked_output_leads(tmp_path):
    """An output named by a link is written where it leads, its partial beside that file and named after it: the rerun
    looked beside the link, under the link's name, and the killed run's file stayed (while the warning said a rerun
    removes it). An entry of a partial's name that is a link is no writer's: left, and what it leads to untouched."""
    folder, out, disk, marker = tmp_path / "in", tmp_path / "out", tmp_path / "disk", tmp_path / "killed"
    for each in (folder, out, disk):
        each.mkdir()
    b = keyframed_clip(folder / "b.mp4", FRAMES)
    (out / "b.mkv").symlink_to(disk / "real.mkv")
    argv = ["batch", str(b), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]
    env = {**os.environ, CRASH_ENV: "b.mp4:0", MARKER_ENV: str(marker)}
    killed = subprocess.run([sys.executable, "-m", "birefvid.cli", *argv], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    left = [p for p in disk.iterdir() if ".partial-" in p.name]
    assert [p.name.startswith(".real.partial-") for p in left] == [True]
    precious = tmp_path / "precious.mkv"
    precious.write_bytes(b"someone's")
    not_ours = disk / ".real.partial-alink.mkv"
    not_ours.symlink_to(precious)

    assert main(argv) == 0
    assert not left[0].exists()
    assert not_ours.is_symlink() and precious.read_bytes() == b"someone's"
    assert (out / "b.mkv").is_symlink() and (disk / "real.mkv").is_file()


def test_a_dotted_video_name_makes_its_png_folder_and_its_partials_are_its_own(tmp_path, caplog):
    """`--ext png` took `2024.06.01 wedding.mp4`'s output folder for a `.01 wedding` file and refused the batch
    before any work; its partial folders (`.2024.06.01 wedding.partial-*`) were neither removed nor named, and
    removal by stem would have hit `.2024.06.partial-*.mov`, the partial of another video's output."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    keyframed_clip(folder / "2024.06.01 wedding.mp4", FRAMES)
    target = out / "2024.06.01 wedding"
    out.mkdir()
    ours = out / ".2024.06.01 wedding.partial-k1ll3d"  # a run killed while writing this folder
    ours.mkdir()
    (ours / "frame_000001.png").write_bytes(b"half")
    others = out / ".2024.06.partial-wr1t1ng.mov"  # another video's (2024.06.mp4), maybe being written now
    others.write_bytes(b"someone else's")
    assert main(["batch", str(folder), "--output-dir", str(out), "--ext", "png", "-q", *MODEL]) == 0
    assert sorted(p.name for p in target.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, FRAMES + 1)]
    assert not ours.exists() and others.exists()
    caplog.clear()
    ours.mkdir()  # left by a later killed run: a batch of other videos names it
    keyframed_clip(folder / "b.mp4", FRAMES)
    assert main(["batch", str(folder), "--output-dir", str(out), "--ext", "png", "-q", *MODEL]) == 0
    warnings = [r.getMessage() for r in caplog.records if "partial file" in r.getMessage()]
    assert len(warnings) == 1 and str(ours) in warnings[0] and str(others) not in warnings[0], warnings


def test_a_sigterm_leaves_the_finished_chunks_only_and_the_rerun_resumes(tmp_path):
    """A local batch stopped by SIGTERM mid-way left, beside the finished chunks, an empty work folder for each video
    it had not begun (`.birefvid-batch/b.mkv/`, ...): its own, looking like work in progress. Now it leaves the
    finished chunks (resumable), no partial file, no output, no empty folder; the rerun does only the rest."""
    import signal
    import time

    from test_batch_media import events, manifest

    folder, out, first, second = tmp_path / "in", tmp_path / "out", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    folder.mkdir()
    for name in "abc":  # stopped after the first chunk of 6: b and c not begun, seconds of work left
        keyframed_clip(folder / f"{name}.mp4", 12)  # a keyframe every 6 frames: 2 chunks each
    argv = ["batch", str(folder), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "-q", *MODEL]
    run = subprocess.Popen([sys.executable, "-m", "birefvid.cli", *argv, "--progress-json", str(first)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (first.exists() and '"chunk_done"' in first.read_text()):
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    code, err = run.wait(timeout=60), run.stderr.read()
    assert code == 143 and "birefvid: terminated" in err, (code, err[-3000:])
    assert events(first)[-1]["event"] == "stopped"
    done = {name: sorted(int(i) for i in video["chunks_done"]) for name, video in manifest(out)["videos"].items()}
    assert 1 <= sum(map(len, done.values())) < 6, done
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != "manifest.json")
    kept = sorted(f".birefvid-batch/{name}/chunk-{i:05d}.mkv" for name, chunks in done.items() for i in chunks)
    folders = sorted({str(Path(k).parent) for k in kept})
    assert left == sorted([".birefvid-batch", *folders, *kept]), left  # no output, no .partial-*, no empty folder

    assert main([*argv, "--progress-json", str(second)]) == 0
    ev = events(second)
    assert len([e for e in ev if e["event"] == "chunk_skipped"]) == sum(map(len, done.values()))
    assert len([e for e in ev if e["event"] == "chunk_done"]) == 6 - sum(map(len, done.values()))
    for name in "abc":
        with av.open(str(out / f"{name}.mkv")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 12


def test_a_batch_leaves_the_partial_file_a_live_process_run_is_writing_to_the_same_output(tmp_path, caplog):
    """A cron batch finishing out/b.mkv while `birefvid process ... -o out/b.mkv` ran in another terminal removed that
    run's `.b.partial-*.mkv` as a killed run's leftover: the process run then ended with "cannot move the finished output
    onto out/b.mkv: No such file or directory", its work lost. A writer holds its partial under a lock, which the batch
    sees: the live run's file is neither removed nor named as a leftover, and that run's commit keeps its output as
    `b (2).mkv`; a killed run's partial (no lock held) is still removed."""
    from birefvid.errors import OutputKeptError
    from birefvid.io.atomic import AtomicFile

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    b = keyframed_clip(folder / "b.mp4", FRAMES)
    live = AtomicFile(out / "b.mkv", overwrite=False)  # what a `process` run's sink holds while it encodes
    live.temp.write_bytes(b"a live run's frames")
    killed = out / ".b.partial-killed0.mkv"  # what a SIGKILLed run left: nobody holds it
    killed.write_bytes(b"a dead run's frames")

    assert main(["batch", str(b), "--output-dir", str(out), "--output", "mask", "-q", *MODEL]) == 0
    assert (out / "b.mkv").is_file() and not killed.exists()
    assert live.temp.read_bytes() == b"a live run's frames"
    assert not [r for r in caplog.records if str(live.temp) in r.getMessage()]  # not named as a killed run's either
    with pytest.raises(OutputKeptError, match=r"kept as .*b \(2\)\.mkv"):
        live.commit()
    assert (out / "b (2).mkv").read_bytes() == b"a live run's frames"

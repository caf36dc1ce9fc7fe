"""Live stats over a long run: the whole run's timings are kept in bounded memory, and its
percentiles still describe the whole run (not just its start or its end)."""

from __future__ import annotations

import json
import time

import pytest
from memory_growth import kept_by

from birefvid.runtime import live_stats
from birefvid.runtime.live_stats import LiveStats

WARM = 20_000  # pictures before measuring (the stores are full by then)


def _feed(stats: LiveStats, frames: int, start: int = 0) -> None:
    """``frames`` shown pictures whose latency climbs 0..99 ms and starts again, the model run on each."""
    for i in range(start, start + frames):
        latency = (i % 100) / 1000.0
        stats.shown(10.0, 10.0 + latency, 10.0 - 2 * latency)
        stats.model_ran(0.25)


def test_a_run_of_hours_keeps_its_timings_in_bounded_memory():
    # 24 fps for an hour is 86,400 pictures: the first WARM (~14 min) fill the stores, the rest must cost nothing more
    stats = LiveStats(every=1e9)
    _feed(stats, WARM)
    more = 2 * WARM
    grown = kept_by([live_stats], lambda: _feed(stats, more, start=WARM))
    # keeping every timing costs ~32 bytes a value, 3 values a picture in 2 periods: ~7 MB here
    assert grown < 50_000, f"stats grew by {grown} bytes over {more} more pictures"


def test_the_whole_runs_percentiles_cover_all_of_it_past_the_kept_timings():
    stats = LiveStats(every=1e9)
    _feed(stats, 3 * WARM)
    final = stats.final(20.0, None)
    assert final["frames_shown"] == 3 * WARM
    assert final["model_ms_median"] == pytest.approx(250.0)
    # the latencies are uniform over 0..99 ms across the run: median ~49.5, p95 ~94
    assert final["latency_ms_median"] == pytest.approx(49.5, abs=2.0)
    assert final["latency_ms_p95"] == pytest.approx(94.0, abs=2.0)
    assert final["mask_age_ms_median"] == pytest.approx(99.0, abs=4.0)


def test_a_full_disk_under_stats_json_is_one_error_and_the_run_can_still_finish(tmp_path):
    """A --stats-json on a disk that fills: one SinkError naming the file, then final() and close() do not fail again."""
    from fs_fixtures import full_dir

    from birefvid.errors import SinkError

    with full_dir(tmp_path / "full", "4k") as folder:
        stats = LiveStats(every=0.0, json_path=folder / "stats.jsonl")
        with pytest.raises(SinkError, match=r"stats_json .*stats.jsonl: cannot write it \(No space left on device\)"):
            for _ in range(1000):  # ~300 bytes a line: the disk is full long before
                stats.emit(1.0, None)
        assert stats.final(2.0, None)["final"]  # the runner still gets its summary, and stops its threads
        stats.close()


@pytest.mark.parametrize("rotate", ["moved", "deleted"])
def test_stats_json_follows_logrotate(tmp_path, rotate):
    """A run of weeks whose --stats-json logrotate moved (or deleted) went on writing into the moved
    file, or into a deleted one whose disk space then stayed taken until the run ended: the next line
    now starts a new file under the name given."""
    import os

    path = tmp_path / "stats.jsonl"
    stats = LiveStats(every=0.0, json_path=path)
    try:
        stats.emit(1.0, None)
        if rotate == "moved":
            path.rename(tmp_path / "stats.jsonl.1")
        else:
            path.unlink()
        stats.emit(2.0, None)
        assert stats.final(3.0, None)["final"]
        assert len(path.read_text().splitlines()) == 2  # the line after the rotation and the final one
        if rotate == "moved":
            assert len((tmp_path / "stats.jsonl.1").read_text().splitlines()) == 1
        if os.path.isdir("/proc/self/fd"):  # Linux: no descriptor left on the deleted file
            held = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    held.append(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    pass
            assert not [h for h in held if "stats.jsonl" in h and h.endswith("(deleted)")]
    finally:
        stats.close()



def test_each_stats_json_line_says_when_it_was_written(tmp_path):
    """A dashboard reading the lines (later, from a rotated file, or several cameras' at once) could not
    place them in time: they held each period's length but no clock. Each now has ``time``, Unix seconds,
    as batch's --progress-json lines do; the run's report, which is no time series, is unchanged."""
    path = tmp_path / "stats.jsonl"
    stats = LiveStats(every=0.0, json_path=path)
    before = time.time()
    try:
        stats.emit(1.0, None)
        stats.emit(2.0, None)
        final = stats.final(3.0, None)
    finally:
        stats.close()
    after = time.time()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    times = [line["time"] for line in lines]
    assert len(times) == 3 and all(before - 0.01 <= t <= after + 0.01 for t in times), (before, times, after)
    assert times == sorted(times) and lines[-1]["final"] and "time" not in final

def test_stats_json_dash_writes_json_lines_on_standard_output(tmp_path, capsys, monkeypatch):
    """`live --stats-json -` made a file named "-" where `--report -` and `eval --json -` print: now one JSON object
    a line on stdout (flushed each), the final one marked, and stdout left open for the CLI."""
    import json
    import sys

    monkeypatch.chdir(tmp_path)
    stats = LiveStats(every=0.0, json_path="-")
    _feed(stats, 10)
    stats.emit(1.0, None)
    stats.final(2.0, None)
    stats.close()
    assert not sys.stdout.closed and list(tmp_path.iterdir()) == []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and lines[0]["frames_shown"] == 10 and lines[1]["final"] is True


def test_stats_json_and_report_both_on_standard_output_is_one_line(tmp_path, capsys):
    """Both on stdout, a reader got JSON lines then an indented report: refused before anything opens, and the
    help says what '-' means."""
    from birefvid.cli import main

    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"")
    assert main(["live", "--source", str(clip), "--model", "tiny", "--sink", str(tmp_path / "r.mp4"), "--stats-json", "-", "--report", "-"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stats-json - and --report - both write to standard output" in err[0], err
    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--stats-json STATS_JSON append stats as JSON lines to this file ('-': standard output" in text


@pytest.mark.parametrize("stats, report", [("-", "/dev/stdout"), ("/dev/stdout", "-")])
def test_stats_json_and_report_both_leading_to_standard_output_is_one_line(tmp_path, capfd, stats, report):
    """``--stats-json - --report /dev/stdout`` (or the other way round): the same standard output as ``- -``, which is
    refused, and the reader got JSON lines then an indented report. Standard output here is capfd's file."""
    from birefvid.cli import main

    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"")
    code = main(["live", "--source", str(clip), "--model", "tiny", "--sink", str(tmp_path / "r.mp4"), "--stats-json", stats, "--report", report])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "both write to standard output" in err[0], err


def test_stats_json_dash_whose_reader_left_ends_the_lines_not_the_run(monkeypatch, caplog):
    """`live --stats-json - | head -1` (or a dashboard restarted): the next line's broken pipe was a SinkError that
    ended the run with exit 2 and threw its recording away; now a warning, and the run goes on."""
    import io
    import sys

    class _Gone(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            _Gone.writes += 1
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", _Gone())
    stats = LiveStats(every=0.0, json_path="-")
    _feed(stats, 10)
    with caplog.at_level("WARNING"):
        stats.emit(1.0, None)
        stats.emit(1.5, None)
    assert stats.final(2.0, None)["frames_shown"] == 10  # the runner still gets its summary
    stats.close()
    assert _Gone.writes == 1  # given up after the first broken write
    assert "standard output's reader has gone; the run goes on" in caplog.text


def test_the_model_rate_counts_finished_runs_and_is_none_without_one():
    """Runs per second of the period; a period in which no run finished has no rate (null, "model -"), not 0.0."""
    from birefvid.runtime.live_stats import format_line

    stats = LiveStats()
    stats.begin(100.0, None)
    idle = stats.emit(101.0, None)
    assert idle["model_fps"] is None and "model - fps" in format_line(idle)
    for _ in range(4):
        stats.model_ran(0.1)
    final = stats.final(102.0, None)
    assert final["model_fps"] == 2.0 and "model 2.0 fps" in format_line(final)


@pytest.mark.parametrize("option", ["--report", "--stats-json"])
@pytest.mark.parametrize("named", ["source", "recording", "source-url"])
def test_a_report_that_would_replace_the_source_or_a_recording_is_refused(tmp_path, capsys, named, option):
    """The report is rewritten on every run: `--report clip.mp4` replaced the video played as the source, and
    `--report rec.mkv` the recording just committed, both exit 0 (`--stats-json` wrote its lines into them).
    One line, before anything opens. A source named file:///.../clip.mp4 is that file too (every URL was passed by)."""
    from birefvid.cli import main
    from media import make_video

    clip = make_video(tmp_path / "clip.mp4", n_frames=3, with_audio=False).path
    before = clip.read_bytes()
    report = tmp_path / "rec.mkv" if named == "recording" else clip
    source = f"file://{clip}" if named == "source-url" else str(clip)
    assert main(["live", "--source", source, "--model", "tiny", "--sink", str(tmp_path / "rec.mkv"), option, str(report)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{option} {report} would write into" in err[0], err
    assert clip.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]

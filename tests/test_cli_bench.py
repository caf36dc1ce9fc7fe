"""``birefvid bench`` and ``birefvid export`` as a user runs them: figures that add up, files that load, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from birefvid.cli import main


def test_bench_prints_and_writes_consistent_figures(tmp_path, capsys):
    out = tmp_path / "b.json"
    code = main(["bench", "--backbone", "pvt_v2_b0", "--resolution", "64", "--device", "cpu", "--backend", "torch",
                 "--precision", "fp32", "--runs", "1", "--clip-size", "128x96", "--clip-frames", "4", "--output", "green",
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    table = captured.out
    # minutes pass before the table on a CPU: stderr says what is being timed (it said nothing)
    assert "bench: timing pvt_v2_b0 (test weights) at 64x64 (torch fp32)" in captured.err
    assert "reference, 1 run each ..." in captured.err  # it said "1 runs each"
    assert "bench: end to end: green of a generated 4-frame 128x96 clip" in captured.err
    figures = json.loads(out.read_text())
    assert (figures["backend"], figures["precision"], figures["resolution"]) == ("torch", "fp32", [64, 64])
    # speedup is rounded to 3 decimals: below 0.1 (a stall on a loaded machine) that rounding passes 1 %
    assert figures["speedup"] == pytest.approx(figures["fps"] / figures["reference_fps"], rel=0.01, abs=0.0005)
    assert figures["max_abs_diff"] < 1e-3  # the sampled deformable conv is exact
    assert figures["gflop_per_frame"] > 0.5  # pvt_v2_b0 BiRefNet at 64 px: ~1.4 GFLOP
    assert figures["gflops_achieved"] == pytest.approx(figures["gflop_per_frame"] * figures["fps"], rel=0.02, abs=0.01)
    pipeline = figures["pipeline"]
    assert (pipeline["frames"], pipeline["clip"], pipeline["output"]) == (4, "128x96", "green")
    assert pipeline["ratio_to_model"] == pytest.approx(pipeline["fps"] / figures["fps"], rel=0.01)
    assert {"decode", "segment", "encode"} <= set(pipeline["stage_seconds"])
    assert set(pipeline["stage_cpu_seconds"]) == set(pipeline["stage_seconds"])
    assert "stages (CPU a frame)" in table
    assert figures["peak_rss_mb"] > 0 and figures["machine"]["cores"] >= 1
    assert "speedup" in table and f"{figures['speedup']:.2f}x" in table


def test_bench_of_a_model_runs_it_at_the_size_process_does(tmp_path, capsys):
    """`bench --model tiny` timed tiny at 512x512, a size process never runs it at (its card says 256)."""
    out = tmp_path / "b.json"
    code = main(["bench", "--model", "tiny", "--device", "cpu", "--backend", "torch", "--precision", "fp32",
                 "--runs", "1", "--clip-frames", "0", "--json", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["resolution"] == [256, 256]
    assert "tiny at 256x256" in capsys.readouterr().out


def test_bench_json_dash_prints_the_figures_alone_on_standard_output(tmp_path, capsys, monkeypatch):
    """`bench --json -`, as `eval --json -` prints JSON, wrote a file named "-" and printed the table."""
    monkeypatch.chdir(tmp_path)
    code = main(["bench", "--backbone", "pvt_v2_b0", "--resolution", "64", "--device", "cpu", "--backend", "torch",
                 "--precision", "fp32", "--runs", "1", "--clip-frames", "0", "--json", "-"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["resolution"] == [64, 64]
    assert list(tmp_path.iterdir()) == []


def test_bench_quiet_prints_the_table_without_progress_lines(tmp_path, capsys):
    """`bench -q`, as `process -q`: no `bench: timing ...` lines, the table (the result) still printed; it had no -q."""
    code = main(["bench", "--backbone", "pvt_v2_b0", "--resolution", "64", "--device", "cpu", "--backend", "torch",
                 "--precision", "fp32", "--runs", "1", "--clip-size", "64x48", "--clip-frames", "2", "-q"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    assert "speedup" in captured.out and "end to end" in captured.out


def test_export_quiet_writes_the_file_without_a_summary_line(pvt_b0_weights, tmp_path, capsys):
    """`export -q`, as `process -q`: no `wrote ...` line; errors still one line. It had no -q."""
    out = tmp_path / "q.onnx"
    assert main(["export", str(out), "--weights", str(pvt_b0_weights), "--resolution", "64", "-q"]) == 0
    assert capsys.readouterr().err == "" and out.stat().st_size > 1e6
    assert main(["export", str(out), "--weights", str(pvt_b0_weights), "--resolution", "64", "-q"]) == 2
    assert capsys.readouterr().err == f"birefvid: error: output exists: {out} (use --overwrite)\n"
    assert main(["export", str(tmp_path / "again.onnx"), "--weights", str(pvt_b0_weights), "--resolution", "64"]) == 0
    assert capsys.readouterr().err.startswith(f"wrote {tmp_path / 'again.onnx'}")  # without -q: the summary


@pytest.mark.parametrize(
    "args,phrase",
    [
        ([], "say what to benchmark"),
        (["--backbone", "pvt_v2_b0", "--clip-size", "wide"], "--clip-size must be WxH"),
        (["--backbone", "pvt_v2_b0", "--clip-size", "0x0"], "--clip-size 0x0: each side must be 16 to 16384 pixels"),  # was a traceback
        (["--backbone", "pvt_v2_b0", "--output", "composite"], "--output composite needs a background"),
        (["--backbone", "pvt_v2_b0", "--resolution", "100"], "multiple"),
        (["--backbone", "pvt_v2_b0", "--clip-frames", "-1"], "--clip-frames must be 0"),
    ],
)
def test_bench_bad_input_is_one_line(args, phrase, capsys):
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and phrase in err, err


# `export`'s first export, its summary, an existing file kept and the cache reused: tests/test_backends.py's
# test_a_pvt_export_by_the_cli_..., whose export is also pvt_v2_b0's parity check against the official model (one
# export for both, ~15-35 s each on CI's 2 cores)


def test_export_writes_a_file_others_can_read(tmp_path, capsys, monkeypatch):
    """The cache's file, made by mkstemp, is 0600; the exported model gets a plain file's mode (as every
    other output does), on this disk or another."""
    import os
    import stat
    import tempfile

    import birefvid.backends.export as export

    fd, cached = tempfile.mkstemp(suffix=".onnx", dir=tmp_path)
    os.write(fd, b"onnx bytes")
    os.close(fd)
    monkeypatch.setattr(export, "cached_onnx", lambda model, size, batch=1, say_time=True: (Path(cached), None))
    mask = os.umask(0o022)
    try:
        for name in ("linked.onnx", "copied.onnx"):
            if name == "copied.onnx":  # another file system: no hard link
                monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError(18, "Invalid cross-device link")))
            out = tmp_path / name
            assert main(["export", str(out), "--model", "tiny", "--resolution", "64"]) == 0
            out_err = capsys.readouterr()
            assert "from the export cache" in out_err.err and out_err.out == ""  # a summary: stderr, as process's
            assert out.read_bytes() == b"onnx bytes" and stat.S_IMODE(out.stat().st_mode) == 0o644, name
    finally:
        os.umask(mask)


def test_an_exported_model_changed_in_place_leaves_the_cache_as_it_was(tmp_path, capsys, monkeypatch):
    """``export`` placed the cached file as a hard link: ``onnx.save`` or ``onnxsim`` over the same name (or
    ``: > m.onnx``) then rewrote the cache's model too, and every later run loaded it (a traceback, exit 1)."""
    import os
    import tempfile

    import birefvid.backends.export as export

    fd, cached = tempfile.mkstemp(suffix=".onnx", dir=tmp_path)
    os.write(fd, b"onnx bytes")
    os.close(fd)
    monkeypatch.setattr(export, "cached_onnx", lambda model, size, batch=1, say_time=True: (Path(cached), None))
    out = tmp_path / "m.onnx"
    assert main(["export", str(out), "--model", "tiny", "--resolution", "64", "-q"]) == 0
    with open(out, "r+b") as f:  # as onnx.save(model, "m.onnx") writes it: the same inode, truncated
        f.truncate(0)
        f.write(b"edited")
    assert out.read_bytes() == b"edited" and Path(cached).read_bytes() == b"onnx bytes"
    assert not os.path.samefile(out, cached)


def test_a_second_export_of_one_name_at_once_says_output_exists_and_keeps_the_first(tmp_path, capsys, monkeypatch):
    """Two `birefvid export m.onnx` at once (a script run twice, two terminals, one at --resolution 512 and one at 1024):
    both found no m.onnx at their start, and the later to finish replaced the other's file without a word. As
    `process`, a run without --overwrite now keeps a file another run wrote meanwhile and ends with "output exists"
    (its own export stays in the cache); with --overwrite it replaces it."""
    import os
    import tempfile

    import birefvid.backends.export as export

    fd, cached = tempfile.mkstemp(suffix=".onnx", dir=tmp_path)
    os.write(fd, b"this run's model")
    os.close(fd)
    out = tmp_path / "m.onnx"

    def exported_while_the_other_run_finished(model, size, batch=1, say_time=True):
        out.write_bytes(b"the other run's model")  # the other run's export, placed while this one exported
        return Path(cached), 12.0

    monkeypatch.setattr(export, "cached_onnx", exported_while_the_other_run_finished)
    assert main(["export", str(out), "--model", "tiny", "--resolution", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"birefvid: error: output exists: {out} (written by another run while this one exported"), err
    assert out.read_bytes() == b"the other run's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([Path(cached).name, "m.onnx"])  # no partial left
    assert main(["export", str(out), "--model", "tiny", "--resolution", "64", "--overwrite", "-q"]) == 0
    assert out.read_bytes() == b"this run's model"


def test_export_over_a_link_replaces_the_file_it_leads_to(tmp_path, capsys, monkeypatch):
    """`export m.onnx --overwrite`, m.onnx a link to the model a service loads: the link was replaced by a file and
    the linked model left as it was; like every other output, and as `cp` does, the linked file is the new model."""
    import os
    import tempfile

    import birefvid.backends.export as export

    fd, cached = tempfile.mkstemp(suffix=".onnx", dir=tmp_path)
    os.write(fd, b"onnx bytes")
    os.close(fd)
    monkeypatch.setattr(export, "cached_onnx", lambda model, size, batch=1, say_time=True: (Path(cached), None))
    (tmp_path / "models").mkdir()
    real = tmp_path / "models" / "served.onnx"
    real.write_bytes(b"old model")
    link = tmp_path / "m.onnx"
    link.symlink_to(real)
    assert main(["export", str(link), "--model", "tiny", "--resolution", "64", "--overwrite", "-q"]) == 0
    assert link.is_symlink() and real.read_bytes() == b"onnx bytes"
    assert sorted(p.name for p in real.parent.iterdir()) == ["served.onnx"]


def test_export_refuses_a_name_without_onnx_suffix(tmp_path, capsys):
    assert main(["export", str(tmp_path / "model.bin"), "--backbone", "pvt_v2_b0"]) == 2
    assert "must end in .onnx" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [([], "name the .onnx file to write: birefvid export model.onnx"),
                                         (["a.onnx", "-o", "b.onnx"], "two outputs given (a.onnx and -o b.onnx)")])
def test_export_needs_one_output_name(tmp_path, capsys, argv, words):
    """No name at all was told to "name the .onnx file to write once", as if it had given two."""
    assert main(["export", *argv, "--backbone", "pvt_v2_b0"]) == 2
    assert words in capsys.readouterr().err


def test_bench_json_into_a_missing_folder_fails_before_the_benchmark(tmp_path, capsys, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("the benchmark ran before --json was checked")

    monkeypatch.setattr("birefvid.commands.bench._load", no_model)
    target = tmp_path / "missing" / "b.json"
    assert main(["bench", "--model", "tiny", "--runs", "1", "--clip-frames", "0", "--json", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birefvid: error: --json folder does not exist: {target.parent}"]


def test_bench_json_where_standard_output_goes_is_refused_before_the_benchmark(tmp_path, capsys, monkeypatch):
    """``bench --json b.json > b.json`` renamed the figures onto the file holding the table (the table gone, exit 0),
    and ``--json /dev/fd/3 3>&1`` wrote the JSON after the table: one line now, before the minutes of timing."""
    from fs_fixtures import standard_output_onto

    def no_model(*a, **k):
        raise AssertionError("the benchmark ran before --json was checked")

    monkeypatch.setattr("birefvid.commands.bench._load", no_model)
    figures = tmp_path / "b.json"
    with standard_output_onto(figures):
        assert main(["bench", "--model", "tiny", "--runs", "1", "--clip-frames", "0", "--json", str(figures)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"birefvid: error: --json {figures} is where standard output goes, and bench prints its table there; "
        "use --json - for the JSON alone, or name another file"
    ]
    assert figures.read_text() == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_on_a_missing_gpu_says_so_before_loading_weights(capsys, monkeypatch):
    """`bench --model general --device cuda` (README) downloaded the weights first, then said there was no GPU."""
    def no_model(*a, **k):
        raise AssertionError("the weights were loaded before --device was checked")

    monkeypatch.setattr("birefvid.commands.bench._load", no_model)
    assert main(["bench", "--model", "general", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0], err


def test_bench_json_onto_a_full_disk_is_one_line_and_keeps_the_earlier_file(tmp_path, capsys):
    """A disk that filled during the benchmark: no half-written or empty JSON for a CI job to read."""
    from fs_fixtures import full_dir

    with full_dir(tmp_path / "full", "4k") as full:
        (full / "b.json").write_text("{}\n")  # the earlier figures: they fill the disk's one page
        code = main(["bench", "--backbone", "pvt_v2_b0", "--resolution", "64", "--device", "cpu", "--backend", "torch",
                     "--precision", "fp32", "--runs", "1", "--clip-frames", "0", "--json", str(full / "b.json")])  # fmt: skip
        err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("bench: ")]  # its progress lines
        assert code == 2 and err == [f"birefvid: error: --json {full / 'b.json'}: cannot write it (No space left on device)"]
        assert sorted(p.name for p in full.iterdir()) == ["b.json"] and (full / "b.json").read_text() == "{}\n"


def test_export_into_a_read_only_folder_is_one_line_before_the_export(tmp_path, capsys):
    from fs_fixtures import read_only_dir

    with read_only_dir(tmp_path / "ro") as ro:
        assert main(["export", str(ro / "t.onnx"), "--model", "tiny", "--resolution", "64"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"birefvid: error: output folder is not writable: {ro}"]
        assert list(ro.iterdir()) == []


def test_export_onto_a_full_disk_is_one_line_and_leaves_no_partial_file(pvt_b0_weights, tmp_path, capsys):
    from fs_fixtures import full_dir

    # the seeded weights at 64x64: the session cache's one export of them, shared with test_export_quiet_... and
    # tests/test_backends.py (``b0``), so this test costs no export of its own once one of them made it; it is
    # copied from that cache onto the full disk (a size of its own, 96x64, exported ~15 s for this test alone)
    with full_dir(tmp_path / "full", "64k") as full:  # the export is ~12 MB
        assert main(["export", str(full / "t.onnx"), "--weights", str(pvt_b0_weights), "--resolution", "64"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"birefvid: error: cannot write {full / 't.onnx'}: No space left on device"]
        assert list(full.iterdir()) == []


@pytest.mark.parametrize("argv, words", [(["--precision", "fp16"], "the export is always fp32, --precision fp16 does not apply"),
                                         (["--device", "cuda"], "runs on the CPU and is the same file for every device: leave out --device cuda"),
                                         (["--backend", "onnxruntime"], "--backend onnxruntime does not apply to export"),
                                         (["--keep-aspect"], "give it as --resolution WxH instead of --keep-aspect")])  # fmt: skip
def test_export_refuses_run_options_it_would_ignore(tmp_path, capsys, argv, words):
    """--precision fp16 (for TensorRT) wrote an fp32 file without a word; --device cuda exported on the CPU."""
    out = tmp_path / "m.onnx"
    assert main(["export", str(out), "--model", "tiny", *argv]) == 2
    assert words in capsys.readouterr().err and not out.exists()


def test_export_help_offers_no_run_options(capsys):
    """export --help listed --precision "default: fp16 on CUDA" and --device cuda, which export refuses: its file is fp32 for every device."""
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    shown = capsys.readouterr().out
    assert "--resolution" in shown and not any(o in shown for o in ("--precision", "--device", "--backend", "--keep-aspect"))


def test_bench_takes_rvms_kind_names_as_process_does():
    """process, batch and image take --output fgr (and pha); bench refused them as an invalid choice."""
    from birefvid.cli import build_parser

    assert [build_parser().parse_args(["bench", "--output", name]).output for name in ("fgr", "pha")] == ["foreground", "mask"]


def test_bench_out_of_memory_while_timing_is_one_line_with_advice_that_can_apply(tmp_path, capsys, monkeypatch):
    """`bench` calls the engine itself to time it, outside the Segmenter's handling: the engine running out of memory
    there (torch's own CPU allocator failing, real) was a traceback, exit 1. Now it is the line `process` gives, naming
    what was timed; at the least --resolution it offers a smaller batch and freeing memory, not a smaller --resolution."""
    from birefvid.backends.engines import TorchEngine

    run = TorchEngine.__call__

    def allocates_too_much(self, x):
        torch.empty(1 << 55, dtype=torch.uint8)  # 32 PiB
        return run(self, x)

    monkeypatch.setattr(TorchEngine, "__call__", allocates_too_much)
    out = tmp_path / "b.json"
    code = main(["bench", "--backbone", "pvt_v2_b0", "--resolution", "64", "--batch-size", "2", "--device", "cpu", "--backend", "torch",
                 "--precision", "fp32", "--runs", "1", "--clip-size", "96x64", "--clip-frames", "0", "--json", str(out), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines() == [
        "birefvid: error: cpu ran out of memory timing the model on 2 frames at 64x64 (DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 36028797018963968 bytes); try --batch-size 1 or freeing the machine's memory (closing what else runs)"
    ]
    assert not out.exists()


@pytest.mark.parametrize(("doing", "fixed_precision", "advice"), [
    ("timing the model", None, "try --batch-size 1, a smaller --resolution or --precision fp16"),
    ("timing the eager fp32 reference", "fp32", "try --batch-size 1 or a smaller --resolution"),
])  # fmt: skip
def test_bench_offers_fp16_for_the_timed_path_only_not_for_the_fp32_reference(doing, fixed_precision, advice):
    """On CUDA in fp32, ``--precision fp16`` shrinks the timed path; the eager reference runs in fp32 whatever
    --precision says, so for it the advice was a flag that changes nothing (docs/speed.md promised it is not offered).
    The line's advice depends on the device's kind alone: this CPU segmenter is named a CUDA one, as no GPU is here."""
    from birefvid.benchmark.model import _out_of_memory_said
    from birefvid.errors import cli_naming
    from birefvid.runtime.segmenter import DeviceOutOfMemory, Segmenter

    seg = Segmenter(module=torch.nn.Identity(), resolution=128, device="cpu", precision="fp32", backend="torch")
    seg.device = torch.device("cuda", 0)
    with cli_naming(), pytest.raises(DeviceOutOfMemory) as raised:
        with _out_of_memory_said(seg, torch.Size((2, 3, 72, 96)), doing, fixed_precision):  # as bench's timing loops say it
            torch.empty(1 << 55, dtype=torch.uint8)  # torch's own allocator failing, real
    line = str(raised.value)
    assert line.startswith(f"cuda:0 ran out of memory {doing} on 2 frames at 128x128 (")
    assert line.endswith(f"); {advice}")

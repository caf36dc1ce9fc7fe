"""``birefvid eval`` end to end: mask videos, alpha videos, PNG folders and DAVIS roots, scored as the metrics score the same arrays."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np
import pytest

import birefvid.commands
from birefvid.cli import main
from birefvid.commands import eval as eval_cmd
from birefvid.eval import Evaluator

H, W, T = 48, 64, 5


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """Make sure ``eval`` is a command (a no-op once birefvid/commands registers it)."""
    if "eval" not in birefvid.commands.COMMANDS:
        monkeypatch.setitem(birefvid.commands.COMMANDS, "eval", eval_cmd)


def _truths(n: int = T, x0: int = 8) -> list[np.ndarray]:
    """Binary uint8 truths: a box moving right 4 pixels a frame."""
    out = []
    for t in range(n):
        g = np.zeros((H, W), np.uint8)
        g[10:34, x0 + 4 * t : x0 + 30 + 4 * t] = 255
        out.append(g)
    return out


def _soft(gts: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Soft, noisy uint8 predictions of ``gts``."""
    rng = np.random.default_rng(seed)
    return [np.clip(cv2.GaussianBlur(g.astype(float), (0, 0), 2) + rng.normal(0, 20, g.shape), 0, 255).astype(np.uint8)
            for g in gts]


def _pngs(folder: Path, masks: list[np.ndarray]) -> Path:
    """Masks as 00000.png, 00001.png, ... (DAVIS naming)."""
    folder.mkdir(parents=True)
    for i, m in enumerate(masks):
        cv2.imwrite(str(folder / f"{i:05d}.png"), m)
    return folder


def _alpha_frame(alpha: np.ndarray) -> av.VideoFrame:
    """A yuva444p frame carrying ``alpha`` exactly (swscale's rgba -> yuva conversion is off by one at times)."""
    frame = av.VideoFrame(alpha.shape[1], alpha.shape[0], "yuva444p")
    for i, plane in enumerate(frame.planes):
        buf = np.zeros((plane.height, plane.line_size), np.uint8)
        buf[:, : alpha.shape[1]] = alpha if i == 3 else (128 if i else 90)
        plane.update(buf.tobytes())
    return frame


def _video(path: Path, masks: list[np.ndarray], codec: str, pix_fmt: str, how: str, options: Optional[dict] = None) -> Path:
    """Write ``masks`` as a video: how='gray' (the grey plane), 'alpha' (alpha of a grey picture) or 'rgb' (white on black)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.options = options or {}
        for m in masks:
            if how == "gray":
                frame = av.VideoFrame.from_ndarray(m, format="gray")
            elif how == "alpha":
                frame = _alpha_frame(m)
            else:
                frame = av.VideoFrame.from_ndarray(np.repeat(m[..., None], 3, axis=2), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _direct(clips: list[tuple[list[np.ndarray], list[np.ndarray]]], threshold: float = 0.5) -> Evaluator:
    """The metrics on the arrays themselves, one clip after another."""
    ev = Evaluator(threshold, keep_frames=True)
    for preds, gts in clips:
        ev.new_clip()
        for p, g in zip(preds, gts):
            ev.step(p, g)
    return ev


def _eval_json(tmp_path: Path, *argv: str) -> dict:
    out = tmp_path / "report.json"
    assert main(["eval", *argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _rows(out: str) -> list[str]:
    """The first table's value rows: after the title and header lines, before the legend."""
    lines = out.splitlines()
    return lines[2 : lines.index(eval_cmd.LEGEND.splitlines()[0])]


def _matting_rows(out: str) -> list[str]:
    """The matting table's value rows: after its title and header, before its legend."""
    lines = out.splitlines()
    return lines[lines.index(eval_cmd.MATTING_TITLE) + 2 : lines.index(eval_cmd.MATTING_LEGEND.splitlines()[0])]


def _same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_mask_video_against_png_folder_table_and_json(tmp_path, capsys):
    gts = _truths()
    preds = _soft(gts)
    pred = _video(tmp_path / "pred.mkv", preds, "ffv1", "gray", "gray")
    gt = _pngs(tmp_path / "gt", gts)
    report = _eval_json(tmp_path, str(pred), str(gt))
    want = _direct([(preds, gts)]).results()
    _same(report["summary"], {**want, "frames": T})
    assert 0.5 < want["iou"] < 1 and want["dtssd"] > 0.01 and want["flicker"] > 0.01  # a real clip, not a trivial one
    lines = capsys.readouterr().out.splitlines()
    header, row = lines[1].split(), lines[2].split()
    assert header == ["frames", "S", "E", "wF", "maxF", "MAE", "IoU", "bIoU", "bF", "J&F", "dtSSD", "flicker"]
    assert row[0] == "all" and row[1] == str(T)
    keys = [k for k, _ in eval_cmd.COLUMNS]
    assert row[2:] == [f"{want[k]:.4f}" for k in keys]


def test_quiet_prints_the_tables_without_their_legends(tmp_path, capsys):
    """`eval -q`, as `process -q`: the result (the tables) alone, without the lines saying what the columns mean."""
    gts = _truths()
    pred, gt = _pngs(tmp_path / "pred", _soft(gts)), _pngs(tmp_path / "gt", gts)
    assert main(["eval", str(pred), str(gt)]) == 0
    full = capsys.readouterr().out.splitlines()
    assert main(["eval", str(pred), str(gt), "-q"]) == 0
    captured = capsys.readouterr()
    legends = {*eval_cmd.LEGEND.splitlines(), *eval_cmd.MATTING_LEGEND.splitlines()}
    assert captured.out.splitlines() == [line for line in full if line not in legends] and captured.err == ""
    assert len(full) - len(captured.out.splitlines()) == len(legends)  # both legends were there, and went
    assert eval_cmd.MATTING_TITLE in captured.out


def test_png_predictions_against_mask_video_per_frame(tmp_path, capsys):
    gts = _truths()
    preds = _soft(gts, seed=1)
    gt = _video(tmp_path / "gt.mkv", gts, "ffv1", "gray", "gray")
    pred = _pngs(tmp_path / "pred", preds)
    report = _eval_json(tmp_path, str(pred), str(gt), "--per-frame", "--threshold", "0.3")
    ev = _direct([(preds, gts)], threshold=0.3)
    _same(report["summary"], {**ev.results(), "frames": T})
    assert [r.pop("frame") for r in report["per_frame"]] == list(range(T))
    for got, want in zip(report["per_frame"], ev.frames):
        _same(got, want)
    rows = _rows(capsys.readouterr().out)
    assert [r.split()[0] for r in rows] == ["0", "1", "2", "3", "4", "all"]
    assert rows[0].split()[-2:] == ["-", "-"]  # frame 0 ends no pair: no dtSSD, no flicker


@pytest.mark.parametrize("name,codec,pix_fmt,options,exact", [
    ("pred.mkv", "ffv1", "yuva444p", None, True),
    ("pred.mov", "prores_ks", "yuva444p10le", {"profile": "4444"}, True),
    ("pred.webm", "libvpx-vp9", "yuva420p", {"crf": "20", "b": "0"}, False),
])
def test_alpha_video_predictions(tmp_path, name, codec, pix_fmt, options, exact):
    gts = _truths()
    # ProRes stores alpha in 10 bits (0 and 255 survive exactly); FFV1 keeps soft values as they are
    preds = _truths(x0=10) if codec == "prores_ks" else _soft(gts, seed=2)
    pred = _video(tmp_path / name, preds, codec, pix_fmt, "alpha", options)
    report = _eval_json(tmp_path, str(pred), str(_pngs(tmp_path / "gt", gts)))
    want = _direct([(preds, gts)]).results()
    if exact:
        _same(report["summary"], {**want, "frames": T})
    else:  # lossy VP9: the alpha side channel is read (the picture itself is flat grey: IoU would be 0)
        assert report["summary"]["iou"] == pytest.approx(want["iou"], abs=0.03)
        assert report["summary"]["mae"] == pytest.approx(want["mae"], abs=0.02)


def _alpha_frame_10bit(alpha: np.ndarray) -> av.VideoFrame:
    """A yuva444p10le frame whose alpha plane holds ``alpha`` (uint8) at 10 bits, rounded: a soft ProRes 4444 matte."""
    frame = av.VideoFrame(alpha.shape[1], alpha.shape[0], "yuva444p10le")
    for i, plane in enumerate(frame.planes):
        buf = np.zeros((plane.height, plane.line_size // 2), np.uint16)
        buf[:, : alpha.shape[1]] = np.round(alpha * (1023 / 255)) if i == 3 else (512 if i else 360)
        plane.update(buf.tobytes())
    return frame


def test_soft_prores_alpha_is_read_at_its_own_depth(tmp_path):
    """ProRes 4444 keeps alpha in 10-16 bits: read through 8-bit RGBA, soft alpha came out half a level high on
    average (a level high from 128 up: 12-bit alpha / 16, not / 4095 x 255), so MAD was off by as much."""
    gts = _truths()
    preds = [np.tile(np.linspace(128, 254, W).round().astype(np.uint8), (H, 1))] * T  # soft everywhere
    pred = tmp_path / "pred.mov"
    with av.open(str(pred), "w") as container:
        stream = container.add_stream("prores_ks", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.options = W, H, "yuva444p10le", {"profile": "4444"}
        for m in preds:
            container.mux(stream.encode(_alpha_frame_10bit(m)))
        container.mux(stream.encode())
    report = _eval_json(tmp_path, str(pred), str(_pngs(tmp_path / "gt", gts)))
    want = _direct([(preds, gts)]).results()
    assert report["summary"]["iou"] == pytest.approx(want["iou"])
    assert report["summary"]["mae"] == pytest.approx(want["mae"], abs=0.2 / 255)  # ProRes 4444 itself is within a tenth of a level


def test_rgb_video_is_read_as_luminance(tmp_path):
    gts = _truths()
    preds = _truths(x0=10)
    pred = _video(tmp_path / "pred.mp4", preds, "libx264", "yuv444p", "rgb", {"qp": "0"})
    report = _eval_json(tmp_path, str(pred), str(_pngs(tmp_path / "gt", gts)))
    want = _direct([(preds, gts)]).results()
    assert report["summary"]["iou"] == pytest.approx(want["iou"])
    assert report["summary"]["mae"] == pytest.approx(want["mae"], abs=2 / 255)  # limited-range Y' expands to 0..255


def test_colour_pictures_scored_by_brightness_are_warned_of(tmp_path, caplog):
    """A green-screen output given as predictions scored IoU 0.0008 by its brightness, with no word why."""
    gts = _truths()
    green = tmp_path / "green.mp4"
    with av.open(str(green), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.options = W, H, "yuv444p", {"qp": "0"}
        for g in gts:
            rgb = np.where(g[..., None] > 0, np.uint8(200), np.array([0, 177, 64], np.uint8))  # grey subject on green
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        container.mux(stream.encode())
    gt = _pngs(tmp_path / "gt", gts)
    assert main(["eval", str(green), str(gt)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{green} holds colour pictures, scored by their brightness: a green-screen, composite or "
                        "blur output is no mask (score an --output mask or alpha one)"]
    caplog.clear()
    # the source video given as the truth: the advice was how to make predictions
    assert main(["eval", str(gt), str(green)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"ground truth {green} holds colour pictures, scored by their brightness: give the true masks, "
                        "not the footage they were made for"]
    caplog.clear()
    grey = _video(tmp_path / "grey.mp4", gts, "libx264", "yuv444p", "rgb", {"qp": "0"})  # white on black: a mask
    assert main(["eval", str(grey), str(gt)]) == 0 and not [r for r in caplog.records if r.levelname == "WARNING"]


def test_mask_image_kinds(tmp_path):
    """DAVIS palette annotations (objects 1 and 2 as one mask), 16-bit grey and RGBA cut-outs, given by a glob."""
    from PIL import Image

    gts = _truths(3)
    labels = [(g > 0).astype(np.uint8) for g in gts]
    for lab in labels:
        lab[10:20, :] *= 2  # the top of the box is a second object
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    davis_palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3)
    for i, lab in enumerate(labels):
        im = Image.frombytes("P", (W, H), lab.tobytes())
        im.putpalette(davis_palette)
        im.save(gt_dir / f"{i:05d}.png")
    preds = _soft(gts, seed=5)
    deep = tmp_path / "deep"
    deep.mkdir()
    for i, p in enumerate(preds):
        cv2.imwrite(str(deep / f"f{i}.png"), p.astype(np.uint16) * 257)  # 16 bit: x * 257 / 65535 = x / 255
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    for i, p in enumerate(preds):
        cv2.imwrite(str(rgba / f"{i}.png"), np.dstack([np.full((H, W, 3), 200, np.uint8), p]))
    want = _direct([(preds, gts)]).results()
    for pred in (f"{deep}/f*.png", str(rgba)):
        _same(_eval_json(tmp_path, pred, str(gt_dir))["summary"], {**want, "frames": 3})


def test_davis_layout_scores_each_sequence_and_all(tmp_path, capsys):
    gts_a, gts_b = _truths(3), _truths(4, x0=2)
    preds_a, preds_b = _soft(gts_a, seed=3), _soft(gts_b, seed=4)
    gt_root = tmp_path / "Annotations" / "480p"
    _pngs(gt_root / "bear", gts_a)
    _pngs(gt_root / "car", gts_b)
    pred_root = tmp_path / "preds"
    _pngs(pred_root / "bear", preds_a)
    _video(pred_root / "car.mkv", preds_b, "ffv1", "gray", "gray")  # birefvid process output beside a folder
    report = _eval_json(tmp_path, str(pred_root), str(gt_root))
    ev = _direct([(preds_a, gts_a), (preds_b, gts_b)])
    bear, car = _direct([(preds_a, gts_a)]).results(), _direct([(preds_b, gts_b)]).results()
    _same(report["sequences"]["bear"], {**bear, "frames": 3})
    _same(report["sequences"]["car"], {**car, "frames": 4})
    _same(report["summary"], {**ev.results(), "frames": 7})
    # DAVIS' J&F Mean: each sequence once, not each frame (3 frames of bear would weigh 3/7, not 1/2)
    mean = report["sequence_mean"]
    for key in ("iou", "boundary_f", "j_and_f", "mae", "dtssd"):
        assert mean[key] == pytest.approx((bear[key] + car[key]) / 2), key
    assert mean["j_and_f"] == pytest.approx((mean["iou"] + mean["boundary_f"]) / 2) and mean["frames"] == 7
    rows = _rows(capsys.readouterr().out)
    assert [row.split()[0] for row in rows] == ["bear", "car", "mean", "all"]
    keys = [k for k, _ in eval_cmd.COLUMNS]
    assert rows[2].split()[2:] == [f"{mean[k]:.4f}" for k in keys]


def test_davis_predictions_named_with_brackets_or_on_a_mac_are_found(tmp_path):
    """A prediction video ``bear [1].mkv`` was looked for with the pattern ``bear [1].*`` (which matches
    ``bear 1.mkv``, not it), and a prediction folder ``café/`` made on Linux was not the truth's ``café/``
    written on a Mac (decomposed, NFD): both 'lacked' their sequence."""
    import unicodedata

    gts = _truths(2)
    _pngs(tmp_path / "gt" / "bear [1]", gts)
    _pngs(tmp_path / "gt" / unicodedata.normalize("NFD", "café"), gts)
    (tmp_path / "pred").mkdir()
    _video(tmp_path / "pred" / "bear [1].mkv", gts, "ffv1", "gray", "gray")
    _pngs(tmp_path / "pred" / unicodedata.normalize("NFC", "café"), gts)
    report = _eval_json(tmp_path, str(tmp_path / "pred"), str(tmp_path / "gt"))
    assert [round(s["iou"], 6) for s in report["sequences"].values()] == [1.0, 1.0]


def test_a_table_naming_what_stdouts_code_page_lacks_is_printed_escaped(tmp_path, monkeypatch):
    """Windows writes a redirected stdout in its code page (cp1252): ``eval ... > scores.txt`` over a
    sequence named 李 raised UnicodeEncodeError after the scoring. Now the name is escaped, as on stderr."""
    import io
    import sys

    gts = _truths(2)
    _pngs(tmp_path / "gt" / "李", gts)
    _pngs(tmp_path / "pred" / "李", gts)
    out = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["eval", str(tmp_path / "pred"), str(tmp_path / "gt")]) == 0
    out.flush()
    assert b"\\u674e" in out.buffer.getvalue()


def test_a_table_naming_a_file_whose_name_is_no_utf8_is_printed_with_its_own_bytes(tmp_path, monkeypatch):
    """On a UTF-8 desktop (de_DE.UTF-8: stdout strict) ``eval`` over masks from an old NAS named in Latin-1
    (``caf\\xe9``, a surrogate in Python) raised UnicodeEncodeError after the scoring; now the name is written
    as its bytes, as ``ls`` writes it."""
    import io
    import os
    import sys

    masks = tmp_path / os.fsdecode(b"caf\xe9")
    masks.mkdir()
    for i, m in enumerate(_truths(2)):  # not cv2.imwrite: OpenCV crashes on a name no UTF-8 can spell
        (masks / f"{i:05d}.png").write_bytes(cv2.imencode(".png", m)[1].tobytes())
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["eval", str(masks), str(masks)]) == 0
    out.flush()
    assert b"caf\xe9 vs " in out.buffer.getvalue()


def test_json_to_stdout(tmp_path, capsys):
    gts = _truths(2)
    gt = _pngs(tmp_path / "gt", gts)
    assert main(["eval", str(gt), str(gt), "--json", "-"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["iou"] == 1.0 and summary["mae"] == 0.0 and summary["dtssd"] == 0.0 and summary["frames"] == 2


def test_json_is_written_whole_or_not_at_all(tmp_path, capsys, monkeypatch):
    """``--json`` into a missing folder fails before the scoring; onto a full disk it is one line
    (an empty scores.json was left behind, or a traceback) and the earlier file is kept."""
    from fs_fixtures import full_dir

    gt = _pngs(tmp_path / "gt", _truths(2))
    missing = tmp_path / "missing" / "s.json"
    with monkeypatch.context() as m:
        m.setattr(eval_cmd, "format_table", None)  # not reached: the folder is checked first
        assert _error(capsys, str(gt), str(gt), "--json", str(missing)).strip() == (
            f"birefvid: error: --json folder does not exist: {missing.parent}"
        )
    with full_dir(tmp_path / "full", "4k") as full:
        (full / "s.json").write_text("{}\n")  # the earlier scores: they fill the disk's one page
        err = _error(capsys, str(gt), str(gt), "--json", str(full / "s.json"))
        assert err.strip() == f"birefvid: error: --json {full / 's.json'}: cannot write it (No space left on device)"
        assert sorted(p.name for p in full.iterdir()) == ["s.json"] and (full / "s.json").read_text() == "{}\n"


def test_json_where_standard_output_goes_is_refused_before_the_scoring(tmp_path, capsys, monkeypatch):
    """``--json r.json > r.json`` renamed the scores onto the file the shell had opened for the table, which went on
    into the old one, gone (exit 0); ``--json /dev/stdout | jq`` got the JSON and then the table. Both are one line
    now, before any scoring, as ``image -o - --report /dev/stdout`` is."""
    from fs_fixtures import standard_output_onto

    gt = _pngs(tmp_path / "gt", _truths(2))
    monkeypatch.setattr(eval_cmd, "format_table", None)  # not reached: refused before the scoring
    scores = tmp_path / "r.json"
    with standard_output_onto(scores):
        err = _error(capsys, str(gt), str(gt), "--json", str(scores))
    assert err.strip() == (f"birefvid: error: --json {scores} is where standard output goes, and eval prints its table there; "
                           "use --json - for the JSON alone, or name another file")
    assert scores.read_text() == ""
    read, write = os.pipe()
    try:
        with standard_output_onto(write):
            err = _error(capsys, str(gt), str(gt), "--json", "/dev/stdout")
        assert "--json /dev/stdout is where standard output goes" in err
        os.set_blocking(read, False)
        with pytest.raises(BlockingIOError):  # nothing written into the pipe
            os.read(read, 1)
    finally:
        os.close(read)
        os.close(write)


def test_predictions_of_sequences_against_one_clip_say_so(tmp_path, capsys):
    """A DAVIS-style folder of predicted sequences scored against one clip's masks said "no images found in preds",
    of a folder full of masks; the line now says what is wrong and what to give."""
    gts = _truths(3)
    gt = _pngs(tmp_path / "gt", gts)
    _pngs(tmp_path / "preds" / "bear", _soft(gts))
    _video(tmp_path / "preds" / "car.mkv", _soft(gts), "ffv1", "gray", "gray")
    err = _error(capsys, str(tmp_path / "preds"), str(gt))
    assert f"predictions {tmp_path / 'preds'} hold sequences (bear, car) but ground truth {gt} is one clip" in err, err
    assert f"e.g. {tmp_path / 'preds' / 'bear'}" in err


def test_an_animated_webp_with_merged_frames_is_named_as_the_cause_of_a_count_mismatch(tmp_path, capsys):
    """``process -o m.webp`` holds a frame that repeats the one before as one longer frame (a still stretch: 6 frames
    became 3), so scoring it said "predictions have 3, ground truth has 6" with no word why."""
    from PIL import Image

    gts = _truths(6)
    gt = _pngs(tmp_path / "gt", gts)
    held = [gts[0], gts[3], gts[5]]  # as the encoder keeps them: 3 frames, the first two held longer
    webp = tmp_path / "m.webp"
    Image.fromarray(held[0]).convert("RGB").save(webp, save_all=True, lossless=True, duration=[120, 80, 40],
                                                 append_images=[Image.fromarray(m).convert("RGB") for m in held[1:]])
    err = _error(capsys, str(webp), str(gt))
    assert f"predictions {webp} have 3, ground truth {gt} has 6; {webp} is an animated picture" in err, err
    assert "score a mask video or image folder instead" in err
    assert "animated picture" not in _error(capsys, str(_pngs(tmp_path / "three", held)), str(gt))


def test_a_nearly_empty_frame_of_a_soft_matte_stays_soft(tmp_path, capsys):
    """0/1 masks are found per clip as files are read; a soft matte's frame holding only the levels 0 and 1 (the subject
    gone, a little noise left) is no 0/1 mask, and its noise is not scored as foreground."""
    gts = _truths(2)
    gts[1][:] = 0
    preds = _soft(gts[:1]) + [np.where(np.arange(H * W).reshape(H, W) % 7 == 0, np.uint8(1), np.uint8(0))]
    got = _eval_json(tmp_path, str(_pngs(tmp_path / "pred", preds)), str(_pngs(tmp_path / "gt", gts)), "--per-frame")
    last = got["per_frame"][1]
    assert last["iou"] == 1.0 and last["mae"] < 1 / 255


def test_a_lossless_mask_video_of_zeros_and_ones_is_read_as_masks(tmp_path):
    """Labels written as a video (FFV1 grey, levels 0 and 1) were read as 0 and 1/255, background everywhere: a perfect
    prediction scored IoU 0, nothing said. They count as 0/255, as a folder of such images does; a lossy video's
    levels are never taken for it (H.264 noise over a background-only stretch is 0s and 1s)."""
    gts = _truths(3)
    labels = _video(tmp_path / "labels.mkv", [(g > 0).astype(np.uint8) for g in gts], "ffv1", "gray", "gray")
    got = _eval_json(tmp_path, str(_pngs(tmp_path / "pred", gts)), str(labels))["summary"]
    assert got["iou"] == 1.0 and got["mae"] == 0.0 and got["frames"] == 3
    empty = _video(tmp_path / "empty.mp4", [np.full((H, W), 16 + (i % 2), np.uint8) for i in range(3)],
                   "libx264", "gray", "gray", {"qp": "0"})
    got = _eval_json(tmp_path, str(empty), str(_pngs(tmp_path / "none", [np.zeros((H, W), np.uint8)] * 3)))["summary"]
    assert got["iou"] == 1.0 and got["mae"] < 2 / 255


def test_json_never_replaces_the_predictions_or_the_truth(tmp_path, capsys):
    """``--json`` is rewritten on every run, so ``eval clip.mkv gt/ --json clip.mkv`` (a slip of tab completion) replaced
    the predictions with their scores and exit 0; a mask inside a folder scored went the same way. Each is one line,
    every file kept, and a JSON beside the masks is still written."""
    gts = _truths(3)
    gt = _pngs(tmp_path / "gt", gts)
    pred = _video(tmp_path / "pred.mkv", _soft(gts), "ffv1", "gray", "gray")
    before = pred.read_bytes(), (gt / "00001.png").read_bytes()
    for named, shown in [(pred, pred), (tmp_path / "." / "pred.mkv", pred), (gt / "00001.png", "00001.png in")]:
        err = _error(capsys, str(pred), str(gt), "--json", str(named))
        assert f"--json {named} would write into {shown}" in err and "which this run reads" in err, err
    err = _error(capsys, str(pred), f"{gt}/*.png", "--json", str(gt / "00001.png"))
    assert f"would write into 00001.png, one of {gt}/*.png" in err
    assert (pred.read_bytes(), (gt / "00001.png").read_bytes()) == before
    assert main(["eval", str(pred), str(gt), "--json", str(gt / "scores.json")]) == 0
    assert json.loads((gt / "scores.json").read_text())["summary"]["frames"] == 3


def _error(capsys, *argv: str) -> str:
    """Run a failing eval: exit 2 and exactly one line on stderr, returned."""
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("birefvid: error: ") and err.count("\n") == 1, err
    return err


def test_fewer_predictions_than_truth_names_a_trimmed_run(tmp_path, capsys):
    """Masks of a part (`process --start/--end`) against the whole truth said only "predictions have 3, ground truth
    has 5": the line now names that likely cause and what to score instead, counted up front (a folder) or while
    decoding (a video); more predictions than truth is no part and gets no such word."""
    gts = _truths()
    gt = _pngs(tmp_path / "gt", gts)
    part = "if the predictions are a part of the video (process --start/--end), score them against the same 3 frames"
    for pred in (_pngs(tmp_path / "part", gts[:3]), _video(tmp_path / "part.mkv", gts[:3], "ffv1", "gray", "gray")):
        assert part in _error(capsys, str(pred), str(gt))
    assert "process --start/--end" not in _error(capsys, str(gt), str(tmp_path / "part.mkv"))
    # one still picture is no part (process writes a part as a video or a folder): pairing it with a clip is the slip
    assert "process --start/--end" not in _error(capsys, str(gt / "00000.png"), str(gt))


def test_errors_are_one_line(tmp_path, capsys):
    gts = _truths()
    gt = _pngs(tmp_path / "gt", gts)
    four = _pngs(tmp_path / "four", gts[:4])
    assert f"frame counts differ: predictions {four} have 4, ground truth {gt} has 5" in _error(capsys, str(four), str(gt))
    short_video = _video(tmp_path / "short.mkv", gts[:3], "ffv1", "gray", "gray")  # counted while decoding
    assert f"predictions {short_video} have 3, ground truth {gt} has 5" in _error(capsys, str(short_video), str(gt))
    assert f"predictions {gt} have 5, ground truth {short_video} has 3" in _error(capsys, str(gt), str(short_video))
    small = _pngs(tmp_path / "small", [cv2.resize(g, (32, 24)) for g in gts])
    err = _error(capsys, str(small), str(gt))
    assert "frame 0 (00000.png vs 00000.png): prediction is 32x24 but ground truth is 64x48" in err
    assert "made with --max-size? process without it to score these masks" in err  # the likely cause, scaled down
    wide = _pngs(tmp_path / "wide", [cv2.resize(g, (32, 16)) for g in gts])
    assert "--max-size" not in _error(capsys, str(wide), str(gt))  # another shape: not a --max-size run
    assert "predictions not found: " in _error(capsys, str(tmp_path / "nope"), str(gt))
    assert "ground truth not found: " in _error(capsys, str(gt), str(tmp_path / "nope.mkv"))
    (tmp_path / "empty").mkdir()
    assert "no images found" in _error(capsys, str(tmp_path / "empty"), str(gt))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    assert "is neither an image nor a readable video" in _error(capsys, str(junk), str(gt))
    broken = _pngs(tmp_path / "broken", gts)
    (broken / "00002.png").write_bytes(b"not a png")
    assert "00002.png is not a readable image" in _error(capsys, str(broken), str(gt))
    assert "--threshold 0.0 must be in (0, 1]" in _error(capsys, str(gt), str(gt), "--threshold", "0")


def test_a_damaged_mp4_index_is_one_line(tmp_path, capsys):
    """A mask MP4 cut inside its index said "has no video stream", and one whose stream has no codec (a damaged
    sample description) crashed with AttributeError."""
    gt = _pngs(tmp_path / "gt", _truths())
    data = _video(tmp_path / "m.mp4", _truths(), "libx264", "yuv420p", "rgb").read_bytes()
    moov = data.rfind(b"moov") - 4
    (tmp_path / "cut.mp4").write_bytes(data[: moov + 40])
    assert "cut.mp4 is not a whole video: it is an MP4/MOV cut off within its index" in _error(capsys, str(tmp_path / "cut.mp4"), str(gt))
    at = data.rfind(b"avc1")
    (tmp_path / "odd.mp4").write_bytes(data[:at] + b"zzzz" + data[at + 4:])
    assert "odd.mp4: its video stream's codec is unknown" in _error(capsys, str(tmp_path / "odd.mp4"), str(gt))


def test_videos_process_refuses_are_refused_not_scored(tmp_path, capsys):
    """A song's cover picture was scored as a one-frame prediction ("prediction is 64x64 but ground truth is ..."), a
    mask MKV cut off was scored as far as it went ("frame counts differ"), and an MP4 whose time scale is damaged,
    which FFmpeg reads one frame of, too; process refuses each with the reason, and eval now says the same."""
    import struct

    from process_fixtures import write_audio_only

    gt = _pngs(tmp_path / "gt", _truths())
    song = write_audio_only(tmp_path / "song.mp4", cover=True)
    assert f"predictions {song} has no video stream (audio-only or data file, or a song's cover picture?)" in _error(capsys, str(song), str(gt))
    data = _video(tmp_path / "m.mkv", _truths(), "ffv1", "gray", "gray").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])
    assert f"predictions {tmp_path / 'cut.mkv'} is not a whole video: the file is truncated" in _error(capsys, str(tmp_path / "cut.mkv"), str(gt))
    data = bytearray(_video(tmp_path / "m.mp4", _truths(), "libx264", "yuv420p", "rgb").read_bytes())
    mdhd = data.find(b"mdhd")
    at = mdhd + 8 + (16 if data[mdhd + 4] == 1 else 8)
    data[at:at + 4] = struct.pack(">I", 0)  # the video's time scale, damaged
    (tmp_path / "odd.mp4").write_bytes(data)
    assert f"predictions {tmp_path / 'odd.mp4'}: its video's timing is broken" in _error(capsys, str(tmp_path / "odd.mp4"), str(gt))


def test_a_mask_video_damaged_midway_is_said_without_ffmpegs_error_number(tmp_path, capsys):
    """A damaged mask video said "([Errno 1094995529] Invalid data found when processing input: 'avcodec_send_packet()')"."""
    from media import damage_packet

    gt = _pngs(tmp_path / "gt", _truths())
    bad = damage_packet(_video(tmp_path / "m.mp4", _truths(), "libx264", "yuv420p", "rgb"), tmp_path / "bad.mp4", 2)
    err = _error(capsys, str(bad), str(gt))
    assert "bad.mp4 could not be decoded (Invalid data found when processing input); the file is damaged" in err, err


def test_davis_errors(tmp_path, capsys):
    gt_root = tmp_path / "gt"
    _pngs(gt_root / "bear", _truths(2))
    _pngs(gt_root / "car", _truths(2))
    preds = _pngs(tmp_path / "preds" / "bear", _truths(2)).parent
    assert "lack 1 of 2 ground-truth sequences (car)" in _error(capsys, str(preds), str(gt_root))
    video = _video(tmp_path / "one.mkv", _truths(2), "ffv1", "gray", "gray")
    assert "predictions must be a folder too" in _error(capsys, str(video), str(gt_root))
    # DAVIS' Annotations/ given for Annotations/480p/: named, not "lack 1 of 1 sequences (480p)"
    davis = tmp_path / "DAVIS" / "Annotations"
    _pngs(davis / "480p" / "bear", _truths(2))
    _pngs(davis / "Full-Resolution" / "bear", _truths(2))
    err = _error(capsys, str(preds), str(davis))
    assert f"holds folders of sequence folders (480p, Full-Resolution): give one of them, e.g. {davis / '480p'}" in err, err


def _animated(path: Path, kind: str, masks: list[np.ndarray]) -> Path:
    """``masks`` written by birefvid's own animated sink (GIF / WebP), as ``process --output KIND`` writes them:
    kind 'mask' (grey pictures, opaque) or 'alpha' (grey pictures, the masks as alpha)."""
    from fractions import Fraction

    from birefvid.frames import StreamInfo
    from birefvid.io import open_sink

    info = StreamInfo(width=W, height=H, time_base=Fraction(1, 25), average_rate=Fraction(25))
    if kind == "mask":
        images = np.stack(masks)
    else:
        images = np.stack([np.dstack([np.full((H, W, 3), 90, np.uint8), m]) for m in masks])
    with open_sink(path, kind=kind, info=info, audio=False) as sink:
        sink.write(images, list(range(len(masks))))
    return path


def test_mask_gif_counts_by_its_grey_levels_and_alpha_gif_by_its_transparency(tmp_path):
    """PyAV decodes every GIF as bgra: a mask GIF's alpha is opaque everywhere, and scoring it gave IoU 0.25."""
    gts = _truths()
    gt = str(_pngs(tmp_path / "gt", gts))
    preds = _soft(gts, seed=3)
    report = _eval_json(tmp_path, str(_animated(tmp_path / "m.gif", "mask", preds)), gt)
    _same(report["summary"], {**_direct([(preds, gts)]).results(), "frames": T})
    cutouts = _truths(x0=10)  # binary: GIF transparency is on or off
    report = _eval_json(tmp_path, str(_animated(tmp_path / "a.gif", "alpha", cutouts)), gt)
    _same(report["summary"], {**_direct([(cutouts, gts)]).results(), "frames": T})


def test_animated_webp_is_read_to_its_last_frame(tmp_path):
    """FFmpeg and OpenCV decode a WebP's first frame only ("frame counts differ ... have 1")."""
    gts = _truths()
    gt = str(_pngs(tmp_path / "gt", gts))
    preds = _soft(gts, seed=4)
    report = _eval_json(tmp_path, str(_animated(tmp_path / "a.webp", "alpha", preds)), gt)  # libwebp keeps alpha lossless
    _same(report["summary"], {**_direct([(preds, gts)]).results(), "frames": T})
    report = _eval_json(tmp_path, str(_animated(tmp_path / "m.webp", "mask", preds)), gt)  # lossy grey, opaque
    want = _direct([(preds, gts)]).results()
    assert report["summary"]["frames"] == T
    assert report["summary"]["iou"] == pytest.approx(want["iou"], abs=0.03)
    assert report["summary"]["mae"] == pytest.approx(want["mae"], abs=0.02)


def test_masks_saved_with_opaque_alpha_count_by_their_grey_levels(tmp_path):
    """A mask PNG saved as RGBA or grey+alpha (Pillow's convert('RGBA'), many editors) is opaque everywhere:
    scoring its alpha gave every frame as all foreground (IoU 0.2 here, no error)."""
    from PIL import Image

    gts = _truths()
    gt = str(_pngs(tmp_path / "gt", gts))
    preds = _soft(gts, seed=6)
    want = {**_direct([(preds, gts)]).results(), "frames": T}
    for mode in ("RGBA", "LA"):
        folder = tmp_path / mode
        folder.mkdir()
        for i, p in enumerate(preds):
            Image.fromarray(p).convert(mode).save(folder / f"{i:05d}.png")
        _same(_eval_json(tmp_path, str(folder), gt)["summary"], want)
    cutouts = tmp_path / "cutouts"  # one frame of a cut-out clip fully opaque (the subject fills it): still its alpha
    cutouts.mkdir()
    preds[2][:] = 255
    for i, p in enumerate(preds):
        cv2.imwrite(str(cutouts / f"{i:05d}.png"), np.dstack([np.full((H, W, 3), 40, np.uint8), p]))
    _same(_eval_json(tmp_path, str(cutouts), gt)["summary"], {**_direct([(preds, gts)]).results(), "frames": T})


def test_zero_one_masks_are_read_as_binary(tmp_path):
    """Masks written as 0/1 (cv2.imwrite of a boolean mask as uint8, common in research code) read as grey
    levels 0 and 1/255: an all-background truth or prediction, scored without a word."""
    gts = _truths()
    preds = _truths(x0=10)
    want = {**_direct([(preds, gts)]).results(), "frames": T}
    gt01 = _pngs(tmp_path / "gt01", [g // 255 for g in gts])
    pred01 = _pngs(tmp_path / "pred01", [p // 255 for p in preds])
    _same(_eval_json(tmp_path, str(pred01), str(gt01))["summary"], want)
    empty = _pngs(tmp_path / "empty", [np.zeros((H, W), np.uint8)] * T)  # all 0: nothing to scale
    assert _eval_json(tmp_path, str(empty), str(gt01))["summary"]["iou"] == 0.0
    faint = _pngs(tmp_path / "faint", [np.full((H, W), 2, np.uint8)] * T)  # 2/255: a faint soft mask, not 0/1
    assert _eval_json(tmp_path, str(faint), str(gt01))["summary"]["mae"] == pytest.approx(
        np.mean([np.abs(2 / 255 - g / 255).mean() for g in gts]))


def test_label_map_written_without_a_palette(tmp_path):
    """Image.fromarray(labels, 'P') saves a one-entry palette: its grey 'ramp' mapped objects 1, 2 to black."""
    from PIL import Image

    gts = _truths(3)
    gt = tmp_path / "gt"
    gt.mkdir()
    for i, g in enumerate(gts):
        labels = (g > 0).astype(np.uint8)
        labels[10:20] *= 2
        picture = Image.fromarray(labels, "P")
        picture.putpalette([0, 0, 0])  # the one entry Pillow 11+ writes by itself (Pillow 9 and 10 wrote a grey ramp)
        picture.save(gt / f"{i:05d}.png")
    preds = _soft(gts, seed=7)
    _same(_eval_json(tmp_path, str(_pngs(tmp_path / "pred", preds)), str(gt))["summary"],
          {**_direct([(preds, gts)]).results(), "frames": 3})


def test_davis_void_is_left_out(tmp_path):
    """DAVIS/VOC annotations mark unlabelled pixels (mostly along edges) with index 255: they counted as
    foreground, so a prediction was marked down for not covering them. Now they are left out as DAVIS' J does."""
    from PIL import Image

    gts = _truths(4)
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (252 * 3) + [224, 224, 192]
    gt = tmp_path / "gt"
    gt.mkdir()
    voids = []
    for i, g in enumerate(gts):
        edge = cv2.dilate(g, np.ones((5, 5), np.uint8)) != cv2.erode(g, np.ones((5, 5), np.uint8))
        labels = np.where(edge, 255, g // 255).astype(np.uint8)
        im = Image.frombytes("P", (W, H), labels.tobytes())
        im.putpalette(palette)
        im.save(gt / f"{i:05d}.png")
        voids.append(edge)
    preds = _soft(gts, seed=8)
    report = _eval_json(tmp_path, str(_pngs(tmp_path / "pred", preds)), str(gt))["summary"]
    keep = [~v for v in voids]
    want_iou = np.mean([((p >= 128) & (g > 0) & k).sum() / (((p >= 128) | (g > 0)) & k).sum()
                        for p, g, k in zip(preds, gts, keep)])
    want_mae = np.mean([np.abs(p / 255 - g / 255)[k].mean() for p, g, k in zip(preds, gts, keep)])
    assert report["iou"] == pytest.approx(want_iou) and report["mae"] == pytest.approx(want_mae)
    rng = np.random.default_rng(0)  # whatever a prediction says in the void changes no score
    noisy = [np.where(v, rng.integers(0, 256, v.shape), p).astype(np.uint8) for p, v in zip(preds, voids)]
    again = _eval_json(tmp_path, str(_pngs(tmp_path / "noisy", noisy)), str(gt))["summary"]
    _same(again, report)


def test_several_objects_scored_as_their_union_are_said_to_be(tmp_path, caplog):
    """DAVIS 2017 annotations of several objects are scored as one foreground: its J&F went into a table beside the
    benchmark's per-object J&F with no word that it is another number."""
    from PIL import Image

    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3)
    gts = _truths(3)
    for seq, objects in (("bike", 2), ("bear", 1)):
        (tmp_path / "gt" / seq).mkdir(parents=True)
        for i, g in enumerate(gts):
            labels = (g // 255).astype(np.uint8)
            if objects == 2:
                labels[:, W // 2 :] *= 2  # the box's right half is object 2
            im = Image.frombytes("P", (W, H), labels.tobytes())
            im.putpalette(palette)
            im.save(tmp_path / "gt" / seq / f"{i:05d}.png")
        _pngs(tmp_path / "pred" / seq, gts)
    assert main(["eval", str(tmp_path / "pred"), str(tmp_path / "gt")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["1 of 2 ground-truth clips (bike) annotate several objects: scored as one foreground, their "
                        "union, so J, F and J&F are not DAVIS 2017's per-object ones"]
    caplog.clear()
    assert main(["eval", str(tmp_path / "pred" / "bear"), str(tmp_path / "gt" / "bear")]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_davis_subset_by_sequences(tmp_path, capsys):
    """DAVIS' Annotations/480p holds all 90 sequences; predictions for the 30 of val.txt could not be scored."""
    gt_root = tmp_path / "Annotations" / "480p"
    truths = {name: _truths(3, x0=x0) for name, x0 in (("bear", 4), ("car", 8), ("dog", 12))}
    for name, gts in truths.items():
        _pngs(gt_root / name, gts)
    preds = {name: _soft(truths[name], seed=i) for i, name in enumerate(("dog", "bear"))}
    for name, masks in preds.items():
        _pngs(tmp_path / "preds" / name, masks)
    val = tmp_path / "val.txt"
    val.write_text("dog\nbear\n")
    assert "--sequences scores a subset" in _error(capsys, str(tmp_path / "preds"), str(gt_root))
    report = _eval_json(tmp_path, str(tmp_path / "preds"), str(gt_root), "--sequences", str(val))
    ev = _direct([(preds["dog"], truths["dog"]), (preds["bear"], truths["bear"])])
    assert list(report["sequences"]) == ["dog", "bear"]
    _same(report["sequences"]["bear"], {**_direct([(preds["bear"], truths["bear"])]).results(), "frames": 3})
    _same(report["summary"], {**ev.results(), "frames": 6})
    assert list(_eval_json(tmp_path, str(tmp_path / "preds"), str(gt_root), "--sequences", "bear")["sequences"]) == ["bear"]
    assert "has no sequence cat" in _error(capsys, str(tmp_path / "preds"), str(gt_root), "--sequences", "bear,cat")
    assert "needs a ground truth of sequence folders" in _error(
        capsys, str(tmp_path / "preds" / "bear"), str(gt_root / "bear"), "--sequences", "bear")


def test_an_empty_sequence_list_names_the_option(tmp_path, capsys):
    """--sequences "" (an unset shell variable) said "the sequence list  names no sequence", naming no option."""
    (tmp_path / "empty.txt").write_text("\n")
    for given, words in (("", "--sequences '' names no sequence: give names separated by commas"),
                         (" , ", "--sequences ' , ' names no sequence"),
                         (str(tmp_path / "empty.txt"), "empty.txt: the file names no sequence")):  # fmt: skip
        assert words in _error(capsys, str(tmp_path / "preds"), str(tmp_path / "gt"), "--sequences", given)


def test_count_mismatch_names_the_missing_frame(tmp_path, capsys):
    """'have 9, has 10' left the user to diff two folders of a thousand files by eye."""
    gts = _truths()
    gt = _pngs(tmp_path / "gt", gts)
    gappy = _pngs(tmp_path / "gappy", gts)
    (gappy / "00003.png").unlink()
    assert "have 4, ground truth" in (err := _error(capsys, str(gappy), str(gt)))
    assert err.rstrip().endswith("the first ground-truth frame without a prediction is 00003.png")
    one_based = tmp_path / "one_based"  # numbered from 1 against a truth numbered from 0: aligned on the first file
    one_based.mkdir()
    for i, g in enumerate(gts[:4]):
        cv2.imwrite(str(one_based / f"frame_{i + 1}.png"), g)
    assert "without a prediction is 00004.png" in _error(capsys, str(one_based), str(gt))
    sparse = _pngs(tmp_path / "sparse", gts[:1])
    cv2.imwrite(str(sparse / "00004.png"), gts[4])  # annotated every fourth frame
    one_based_all = _pngs(tmp_path / "one_based_all", [])
    for i, g in enumerate(gts):
        cv2.imwrite(str(one_based_all / f"frame_{i + 1}.png"), g)  # numbers that are not the annotations': refused
    # it said "prediction frame_2.png has no ground-truth frame: keep only the predictions of annotated frames"
    assert ("the predictions are numbered from frame_1.png, the annotations from 00000.png: number them alike"
            in _error(capsys, str(one_based_all), str(sparse)))


def test_folders_paired_in_order_whose_numbers_drift_apart_are_warned_of(tmp_path, caplog):
    """Every other prediction against every truth frame, or a frame missing on each side, as many files on both:
    scored in order without a word, every pair after the gap shifted."""
    gts = _truths()
    gt = _pngs(tmp_path / "gt", gts)
    pred = _pngs(tmp_path / "pred", gts)
    (pred / "00002.png").unlink()
    cv2.imwrite(str(pred / "00005.png"), gts[4])
    assert main(["eval", str(pred), str(gt)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(
        "frames pair in order, not by their numbers: prediction 00003.png is scored against ground truth 00002.png")
    caplog.clear()
    one_based = tmp_path / "one_based"  # numbers that move together pair in order without a warning
    one_based.mkdir()
    for i, g in enumerate(gts):
        cv2.imwrite(str(one_based / f"frame_{i + 1:06d}.png"), g)
    assert main(["eval", str(one_based), str(gt)]) == 0 and not [r for r in caplog.records if r.levelname == "WARNING"]
    every_fifth = _pngs(tmp_path / "every_fifth", [])  # process' numbers for YouTube-VOS' JPEGImages, every fifth frame
    for i, g in enumerate(gts):
        cv2.imwrite(str(every_fifth / f"{5 * i:05d}.png"), g)
    assert main(["eval", str(one_based), str(every_fifth)]) == 0 and not [r for r in caplog.records if r.levelname == "WARNING"]


def test_sparse_annotations_pair_by_frame_number(tmp_path, capsys):
    """YouTube-VOS (all frames) annotates every fifth frame: predictions of every frame were refused; now the
    annotated ones are scored, and no temporal pair spans a gap."""
    gts = _truths(7)
    preds = _soft(gts, seed=9)
    pred = tmp_path / "pred"  # birefvid process JPEGImages/<video> -o pred --output mask keeps the input's numbers
    pred.mkdir()
    for i, p in enumerate(preds):
        cv2.imwrite(str(pred / f"frame_{i:06d}.png"), p)
    gt = tmp_path / "gt"
    gt.mkdir()
    for i in (0, 5, 6):
        cv2.imwrite(str(gt / f"{i:05d}.png"), gts[i])
    report = _eval_json(tmp_path, str(pred), str(gt), "--per-frame")
    ev = Evaluator(keep_frames=True)
    ev.step(preds[0], gts[0])
    ev.new_clip()
    ev.step(preds[5], gts[5])
    ev.step(preds[6], gts[6])  # the one pair of consecutive annotated frames
    _same(report["summary"], {**ev.results(), "frames": 3})
    assert len(report["per_frame"]) == 3 and "dtssd" not in report["per_frame"][1] and "dtssd" in report["per_frame"][2]
    # each row names the frame it scores (the annotation's number), not its place among the annotations: 5 was "1"
    assert [r["frame"] for r in report["per_frame"]] == [0, 5, 6]
    assert [r.split()[0] for r in _rows(capsys.readouterr().out)] == ["0", "5", "6", "all"]
    assert report["per_frame"][1]["j_and_f"] == pytest.approx((ev.frames[1]["iou"] + ev.frames[1]["boundary_f"]) / 2)


def _rgb_pngs(folder: Path, n: int) -> Path:
    """Colour foreground pictures (a matting dataset's fgr/), nothing like a matte."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), rng.integers(0, 256, (H, W, 3), np.uint8))
    return folder


@pytest.mark.parametrize("layout", ["rvm", "per_clip"])
def test_videomatte_layouts_score_pha_and_never_fgr(tmp_path, capsys, layout):
    """VideoMatte240K / RVM keep fgr/ beside pha/: fgr was scored as a sequence of mattes, or the hint named it."""
    clips = {"0000": _truths(3), "0001": _truths(4, x0=2)}
    preds = {name: _soft(g, seed=i) for i, (name, g) in enumerate(clips.items())}
    for side, data in (("gt", clips), ("pred", preds)):
        for name, masks in data.items():
            pha = f"pha/{name}" if layout == "rvm" else f"{name}/pha"
            _pngs(tmp_path / side / "videomatte_motion" / pha, masks)
            _rgb_pngs(tmp_path / side / "videomatte_motion" / pha.replace("pha", "fgr"), len(masks))
    report = _eval_json(tmp_path, str(tmp_path / "pred" / "videomatte_motion"), str(tmp_path / "gt" / "videomatte_motion"))
    assert list(report["sequences"]) == ["0000", "0001"]
    ev = _direct([(preds["0000"], clips["0000"]), (preds["0001"], clips["0001"])])
    _same(report["summary"], {**ev.results(), "frames": 7})
    one = _eval_json(tmp_path, str(tmp_path / "pred" / "videomatte_motion" / ("0001" if layout == "per_clip" else "pha/0001")),
                     str(tmp_path / "gt" / "videomatte_motion" / ("0001" if layout == "per_clip" else "pha/0001")))
    _same(one["summary"], {**_direct([(preds["0001"], clips["0001"])]).results(), "frames": 4})
    err = _error(capsys, str(tmp_path / "pred"), str(tmp_path / "gt"))
    assert f"give one of them, e.g. {tmp_path / 'gt' / 'videomatte_motion'}" in err


def test_matting_table_at_rvm_scales(tmp_path, capsys):
    """A matting researcher reads MAD, MSE x1000, Grad, Conn and dtSSD x100 (0 for the first frame) off RVM's tables."""
    gts = [cv2.GaussianBlur(g, (0, 0), 2) for g in _truths()]  # soft mattes
    preds = _soft(gts, seed=5)
    gt, pred = _pngs(tmp_path / "gt", gts), _pngs(tmp_path / "pred", preds)
    report = _eval_json(tmp_path, str(pred), str(gt))
    summary, ev = report["summary"], _direct([(preds, gts)])
    assert summary["rvm_mad"] == pytest.approx(1000 * summary["mae"]) and summary["rvm_mse"] == pytest.approx(1000 * summary["mse"])
    assert summary["rvm_dtssd"] == pytest.approx(100 * (T - 1) / T * summary["dtssd"])
    assert summary["grad"] == pytest.approx(np.mean([r["grad"] for r in ev.frames])) and summary["grad"] > 0
    assert summary["conn"] > 0
    rows = _matting_rows(capsys.readouterr().out)
    assert [r.split() for r in rows] == [["all", str(T)] + [f"{summary[k]:.4f}" for k, _ in eval_cmd.MATTING_COLUMNS]]


def test_a_folder_of_truth_videos_is_a_set_of_sequences(tmp_path, capsys):
    """VideoMatte240K's test set as downloaded: test/pha/0000.mp4 beside test/fgr/0000.mp4 (was: 'no images found')."""
    clips = {"0000": _truths(3), "0001": _truths(4, x0=2)}
    preds = {name: _soft(g, seed=i) for i, (name, g) in enumerate(clips.items())}
    for name, masks in clips.items():
        (tmp_path / "test" / "pha").mkdir(parents=True, exist_ok=True)
        (tmp_path / "test" / "fgr").mkdir(parents=True, exist_ok=True)
        _video(tmp_path / "test" / "pha" / f"{name}.mkv", masks, "ffv1", "gray", "gray")
        _video(tmp_path / "test" / "fgr" / f"{name}.mkv", [255 - m for m in masks], "ffv1", "gray", "gray")
    _pngs(tmp_path / "pred" / "0000", preds["0000"])
    _video(tmp_path / "pred" / "0001.mkv", preds["0001"], "ffv1", "gray", "gray")
    report = _eval_json(tmp_path, str(tmp_path / "pred"), str(tmp_path / "test"))
    ev = _direct([(preds["0000"], clips["0000"]), (preds["0001"], clips["0001"])])
    assert list(report["sequences"]) == ["0000", "0001"]
    _same(report["summary"], {**ev.results(), "frames": 7})
    one = _eval_json(tmp_path, str(tmp_path / "pred"), str(tmp_path / "test" / "pha"), "--sequences", "0001")
    _same(one["summary"], {**_direct([(preds["0001"], clips["0001"])]).results(), "frames": 4})


def test_an_mpeg_ts_mask_cut_off_is_scored_with_process_warning(tmp_path, caplog):
    """An MPEG-TS ending partway through a packet (a recording stopped abruptly) is processed with a warning that it
    was cut; eval scored such a prediction or truth with nothing said, where docs/process.md says they act alike."""
    whole = _video(tmp_path / "m.ts", _truths(12), "libx264", "yuv420p", "rgb").read_bytes()
    assert len(whole) % 188 == 0
    cut = tmp_path / "cut.ts"
    cut.write_bytes(whole[: len(whole) * 8 // 10 // 188 * 188 + 100])  # 100 bytes into a packet
    with caplog.at_level("WARNING"):
        assert main(["eval", str(cut), str(cut), "-q"]) == 0
    said = [r.getMessage() for r in caplog.records if "MPEG-TS" in r.getMessage()]
    assert said == [f"{role} {cut}: the file ends partway through an MPEG-TS packet, as a recording stopped abruptly or an "
                    "interrupted download leaves it; its frames before the cut are scored, as ffmpeg reads them"
                    for role in ("predictions", "ground truth")], said
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["eval", str(tmp_path / "m.ts"), str(tmp_path / "m.ts"), "-q"]) == 0
    assert not [r for r in caplog.records if "MPEG-TS" in r.getMessage()]

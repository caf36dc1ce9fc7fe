"""``birefvid image``: RGBA/mask PNGs whose alpha equals the Segmenter's, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from icc_profiles import cmyk_profile, gray_profile

from media import scene_picture, write_scene_picture

from birefvid.cli import main
from birefvid.runtime import Segmenter

MODEL_ARGS = ["--resolution", "64", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture()
def photo(tmp_path) -> Path:
    return write_scene_picture(tmp_path / "photo.png")


def _expected_alpha(weights: Path, image_rgb: np.ndarray) -> np.ndarray:
    seg = Segmenter(weights=str(weights), resolution=64, device="cpu", precision="fp32")
    return np.round(seg(image_rgb)[0] * 255).astype(np.uint8)


def test_rgba_png_alpha_equals_segmenter(tmp_path, photo, pvt_b0_weights, capsys):
    out = tmp_path / "cut.png"
    assert main(["image", str(photo), "-o", str(out), "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    assert capsys.readouterr().err.strip() == f"wrote {out}"  # says what it wrote, as process does
    rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (48, 64, 4)
    expected = _expected_alpha(pvt_b0_weights, scene_picture(0))
    assert np.abs(rgba[..., 3].astype(int) - expected).max() <= 1  # same model, same input: rounding only
    assert len(np.unique(rgba[..., 3])) > 4  # a real matte, not a constant
    source = cv2.imread(str(photo))
    opaque = rgba[..., 3] == 255
    if opaque.any():  # colour is the source's wherever the subject is fully opaque
        assert np.abs(rgba[..., :3][opaque].astype(int) - source[opaque]).max() <= 1


def test_mask_output_and_folder_input(tmp_path, pvt_b0_weights):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"img{i}.jpg"), cv2.cvtColor(scene_picture(i), cv2.COLOR_RGB2BGR))
    out = tmp_path / "masks"
    assert main(["image", str(src), "-o", str(out), "--output", "mask", "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["img0.png", "img1.png"]
    mask = cv2.imread(str(out / "img1.png"), cv2.IMREAD_UNCHANGED)
    assert mask.ndim == 2 and mask.dtype == np.uint8
    rgb = cv2.cvtColor(cv2.imread(str(src / "img1.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(mask.astype(int) - _expected_alpha(pvt_b0_weights, rgb)).max() <= 1



def test_a_folder_holds_one_picture_at_a_time(tmp_path, pvt_b0_weights, monkeypatch):
    # a 100 MP photo's picture and cut-out take ~1 GB: the previous one's must be gone when the next is read
    import weakref

    from birefvid.commands import image as image_command
    from birefvid.compose.compositor import Compositor

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"img{i}.png"), cv2.cvtColor(scene_picture(i), cv2.COLOR_RGB2BGR))
    held: list[weakref.ref] = []
    alive_at_read: list[int] = []
    read, composite = image_command._read_checked, Compositor.__call__

    def tracked_read(path, *options):
        alive_at_read.append(sum(ref() is not None for ref in held))
        picture = read(path, *options)
        held.append(weakref.ref(picture[0]))
        return picture

    def tracked_composite(self, *args, **kwargs):
        pixels = composite(self, *args, **kwargs)
        held.append(weakref.ref(pixels))
        return pixels

    monkeypatch.setattr(image_command, "_read_checked", tracked_read)
    monkeypatch.setattr(Compositor, "__call__", tracked_composite)
    out = tmp_path / "out"
    assert main(["image", str(src), "-o", str(out), "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    assert len(list(out.iterdir())) == 3
    assert alive_at_read == [0, 0, 0]  # neither the last picture nor its cut-out outlives its turn

def test_a_picture_another_run_wrote_meanwhile_is_not_replaced_without_overwrite(tmp_path, photo, pvt_b0_weights, capsys, monkeypatch):
    """Two `image` runs writing one name at once: the later replaced the earlier's picture and both said done, as
    process did before it refused that. Now the later ends with one line naming where its own picture was kept,
    and the other's picture stays."""
    from birefvid.commands import image as image_command

    out = tmp_path / "cut.png"
    header = image_command._header

    def other_run_finishes(source):
        out.write_bytes(b"the other run's picture")
        return header(source)

    monkeypatch.setattr(image_command, "_header", other_run_finishes)
    _one_line_error(capsys, main(["image", str(photo), "-o", str(out), "--weights", str(pvt_b0_weights), *MODEL_ARGS]),
                    f"output exists: {out} (written by something else while this run wrote it); this run's output is kept as "
                    f"{tmp_path / 'cut (2).png'}")  # fmt: skip
    assert out.read_bytes() == b"the other run's picture"
    assert (tmp_path / "cut (2).png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, "cut (2).png", photo.name])  # no temporary left


def _one_line_error(capsys, code: int, pattern: str) -> None:
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:")
    assert pattern in lines[0], lines[0]


def test_a_folder_run_off_a_terminal_prints_progress_lines(tmp_path, pvt_b0_weights, capsys, monkeypatch):
    """In a CI log (stderr not a terminal) a run over thousands of photos printed nothing until the end;
    now a ``processed N/M pictures`` line every 10 s, as ``process`` does for frames (here every picture)."""
    monkeypatch.setattr("birefvid.commands.progress.EVERY_SECONDS", 0.0, raising=False)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"img{i}.jpg"), cv2.cvtColor(scene_picture(i), cv2.COLOR_RGB2BGR))
    (src / "img3.jpg").write_bytes(b"not a picture")  # skipped, and counted
    out = tmp_path / "cut"
    assert main(["image", str(src), "-o", str(out), "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" (")[0] for line in lines[:-1]] == [f"processed {i}/4 pictures" for i in range(1, 5)]
    assert "\r" not in "".join(lines) and lines[-1].startswith("birefvid: error: 1 of 4 images could not be read")
    assert main(["image", str(src / "img0.jpg"), str(src / "img1.jpg"), "-o", str(tmp_path / "q"), "-q",
                 "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0  # fmt: skip
    assert capsys.readouterr().err == ""


def test_named_pipes_are_refused_in_the_words_of_pictures(tmp_path, photo, capsys, monkeypatch):
    """A named pipe as the input hung (a picture file is opened twice), and as -o it was replaced; each line now
    points at ``-``, which reads standard input once and writes standard output (``test_image_stdio``)."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    _one_line_error(capsys, main(["image", "fifo", "-o", "cut.png"]), "fifo is a pipe, and a picture file is opened more than once; name -")
    _one_line_error(capsys, main(["image", str(photo), "-o", "fifo"]), "or -o - to write to standard output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", photo.name]  # nothing written


def test_missing_input(tmp_path, capsys, pvt_b0_weights):
    code = main(["image", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "--weights", str(pvt_b0_weights)])
    _one_line_error(capsys, code, "input not found")
    assert not (tmp_path / "out").exists()


def test_pictures_named_alike_but_for_case_onto_a_disk_that_ignores_case(tmp_path, photo, capsys, pvt_b0_weights, monkeypatch):
    """A camera card's IMG_1.JPG beside an edited img_1.jpg: on an exFAT stick or a Mac's disk IMG_1.png and
    img_1.png are one file, and the second cut-out replaced the first without a word. Such a disk (no such
    disk here: its probe answers yes) refuses the run; this one, which tells them apart, writes both."""
    import birefvid.io.atomic as atomic

    from birefvid.io.atomic import folds_names

    photo.rename(tmp_path / "IMG_1.JPG")
    (tmp_path / "img_1.jpg").write_bytes((tmp_path / "IMG_1.JPG").read_bytes())
    args = ["image", str(tmp_path / "IMG_1.JPG"), str(tmp_path / "img_1.jpg"), "-o", str(tmp_path / "out"), "--output", "mask",
            "--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu"]  # fmt: skip
    assert not folds_names(tmp_path) and sorted(p.name for p in tmp_path.iterdir()) == ["IMG_1.JPG", "img_1.jpg"]  # the probe is gone
    monkeypatch.setattr(atomic, "folds_names", lambda folder: True)
    _one_line_error(capsys, main(args), "would both be written to")
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()
    assert main(args) == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG_1.png", "img_1.png"]


def test_unreadable_image_leaves_nothing(tmp_path, capsys, pvt_b0_weights):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    out = tmp_path / "out.png"
    _one_line_error(capsys, main(["image", str(bad), "-o", str(out), "--weights", str(pvt_b0_weights), *MODEL_ARGS]), "not a readable image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]  # no output, no temp file


def test_unreadable_image_in_a_folder_is_skipped_and_named(tmp_path, capfd, pvt_b0_weights):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"img{i}.jpg"), cv2.cvtColor(scene_picture(i), cv2.COLOR_RGB2BGR))
    (src / "img0b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")  # between the two
    code = main(["image", str(src), "-o", str(out), "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS])
    # capfd, not capsys: libpng's own complaints would go straight to file descriptor 2
    _one_line_error(capfd, code, f"1 of 3 images could not be read or used and were skipped: {src / 'img0b.png'} (the other 2 were written")
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png"]


def test_each_picture_skipped_in_a_folder_is_said_with_why(tmp_path, pvt_b0_weights):
    """Among many, a bad picture was only named in the end line, its reason dropped: an empty file (a copy that
    failed: copy it again) and a web page saved as .jpg (fetch the picture itself) looked alike. Each now has a
    line saying why, as batch's skipped videos do; -q keeps to the one error line (the tests above)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cv2.imwrite(str(src / "good.jpg"), cv2.cvtColor(scene_picture(0), cv2.COLOR_RGB2BGR))
    (src / "empty.jpg").write_bytes(b"")
    (src / "page.jpg").write_bytes(b"<!DOCTYPE html><html><body>Not found</body></html>")
    done = subprocess.run([sys.executable, "-m", "birefvid", "image", str(src), "-o", str(out), "--weights", str(pvt_b0_weights),
                           *MODEL_ARGS], capture_output=True, text=True, timeout=600)  # the command's own log lines, as a user sees them
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, lines
    skipped = [line for line in lines if line.startswith("birefvid: skipped: ")]
    assert skipped == [f"birefvid: skipped: {src / 'empty.jpg'} is not a readable image (the file is empty, 0 bytes)",
                       f"birefvid: skipped: {src / 'page.jpg'} is not a readable image (it holds text, not a picture: a web page or text file under a picture's name?)"], lines  # fmt: skip
    assert lines[-1].startswith("birefvid: error: 2 of 3 images could not be read or used and were skipped"), lines
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]


def test_a_folder_of_only_unreadable_images_says_none_was_written(tmp_path, capfd, pvt_b0_weights):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a.png", "b.png"):
        (src / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    code = main(["image", str(src), "-o", str(out), "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS])
    # it said "(the other 0 were written to ...)"
    _one_line_error(capfd, code, f"2 of 2 images could not be read or used and were skipped: {src / 'a.png'}, {src / 'b.png'} (none was written)")
    assert not out.exists() or not any(out.iterdir())


def test_a_picture_too_small_to_work_on(tmp_path, capsys, pvt_b0_weights):
    dot = tmp_path / "dot.png"
    cv2.imwrite(str(dot), np.full((1, 1, 3), 128, np.uint8))
    code = main(["image", str(dot), "-o", str(tmp_path / "out.png"), "--weights", str(pvt_b0_weights), *MODEL_ARGS])
    _one_line_error(capsys, code, "dot.png is 1x1 pixels; birefvid needs at least 8x8")


def test_phone_photo_is_cut_out_upright(tmp_path, pvt_b0_weights):
    """A JPEG stored sideways with EXIF orientation 6 (how phones save portrait photos) comes out as viewers show it."""
    path, out = tmp_path / "phone.jpg", tmp_path / "phone.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to display
    Image.fromarray(scene_picture(3)).save(path, exif=exif, quality=95)
    assert main(["image", str(path), "-o", str(out), "-q", "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (64, 48, 4)
    stored = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)  # the pixels as stored, sideways
    upright = np.ascontiguousarray(np.rot90(stored, -1))
    assert np.abs(rgba[..., 3].astype(int) - _expected_alpha(pvt_b0_weights, upright)).max() <= 1


def test_existing_output_needs_overwrite(tmp_path, photo, capsys, pvt_b0_weights):
    out = tmp_path / "cut.png"
    out.write_bytes(b"keep me")
    _one_line_error(capsys, main(["image", str(photo), "-o", str(out), "--weights", str(pvt_b0_weights)]), "output exists")
    assert out.read_bytes() == b"keep me"
    assert main(["image", str(photo), "-o", str(out), "--overwrite", "--weights", str(pvt_b0_weights), *MODEL_ARGS]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (48, 64, 4)


def _integer_weights(good: Path, path: Path) -> Path:
    """``good``'s checkpoint with its weights made int8, as a quantized or hand-converted file holds them."""
    import torch

    state = torch.load(good, weights_only=True)
    torch.save({k: (v.to(torch.int8) if "weight" in k and v.is_floating_point() else v) for k, v in state.items()}, path)
    return path


@pytest.mark.parametrize(
    "make,extra,pattern",
    [
        (lambda d, _: d / "missing.pth", [], "weights file not found"),
        (lambda d, _: (d / "junk.pth").write_bytes(b"junk") and d / "junk.pth", [], "not a BiRefNet checkpoint"),
        (None, ["--backbone", "swin_v1_t"], "does not fit backbone swin_v1_t"),
        (lambda d, good: _integer_weights(good, d / "int8.pth"), [], "holds 237 weight tensors that are not floating point"),
    ],
    ids=["missing", "not-a-checkpoint", "wrong-backbone", "integer-weights"],
)
def test_bad_weights(tmp_path, photo, capsys, pvt_b0_weights, make, extra, pattern):
    """A checkpoint that cannot run is one error line, exit 2, no output. Integer weights (a quantized or converted
    file) fit every name and shape: torch refused them as the model loaded, a traceback and exit 1."""
    weights = make(tmp_path, pvt_b0_weights) if make else pvt_b0_weights
    out = tmp_path / "cut.png"
    _one_line_error(capsys, main(["image", str(photo), "-o", str(out), "--weights", str(weights), *extra]), pattern)
    assert not out.exists()


def test_bad_resolution(tmp_path, photo, capsys, pvt_b0_weights):
    code = main(["image", str(photo), "-o", str(tmp_path / "c.png"), "--weights", str(pvt_b0_weights), "--resolution", "100"])
    _one_line_error(capsys, code, "multiples of 32")


# -- outputs other than RGBA: greenscreen, a new background, a blurred one; WebP and JPEG --------------


def _scene_photo(path: Path, size=(64, 48), textured: bool = False) -> np.ndarray:
    from process_fixtures import scene_frame

    rgb = scene_frame(0, size, textured)
    Image.fromarray(rgb).save(path)
    return rgb


def _regions(size=(64, 48), margin: int = 3):
    from process_fixtures import interior, true_mask

    return interior(true_mask(0, size), margin)


def _rgb(path: Path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB")).astype(int)


def test_composite_on_white_as_jpeg(tmp_path, red_key):
    """The product-photo case: the subject on plain white, as a JPEG."""
    photo = tmp_path / "shoe.png"
    rgb = _scene_photo(photo)
    out = tmp_path / "shoe.jpg"
    assert main(["image", str(photo), "-o", str(out), "--output", "composite", "--background", "white", "-q"]) == 0
    picture = _rgb(out)
    subject, background = _regions()
    assert np.abs(picture[background] - 255).max() <= 6  # JPEG at quality 95: a few levels
    assert np.abs(picture[subject] - rgb[subject]).max() <= 8


def test_a_red_product_on_white_keeps_a_clean_edge_in_jpeg(tmp_path, red_key):
    """JPEG in full-resolution colour (4:4:4): in 4:2:0 a red product's edge on white was off by up to 91 levels."""
    photo = tmp_path / "pot.png"
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[:] = (0, 0, 255)
    cv2.circle(rgb, (64, 48), 30, (230, 20, 30), -1)
    Image.fromarray(rgb).save(photo)
    args = ["--output", "composite", "--background", "white", "-q"]
    assert main(["image", str(photo), "-o", str(tmp_path / "exact.png"), *args]) == 0
    assert main(["image", str(photo), "-o", str(tmp_path / "shop.jpg"), *args]) == 0
    assert np.abs(_rgb(tmp_path / "shop.jpg") - _rgb(tmp_path / "exact.png")).max() <= 30  # 18 here; 91 in 4:2:0
    assert main(["image", str(photo), "-o", str(tmp_path / "mask.jpg"), "--output", "mask", "-q"]) == 0  # gray JPEG too
    assert Image.open(tmp_path / "mask.jpg").mode == "L"


def test_composite_fits_an_image_background_to_each_picture(tmp_path, red_key):
    from birefvid.compose.background import cover

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    sizes = [(64, 48), (48, 80)]
    for i, size in enumerate(sizes):
        _scene_photo(src / f"p{i}.png", size)
    yy, xx = np.mgrid[0:60, 0:90]
    backdrop = np.dstack([xx * 2, yy * 3, np.full_like(xx, 90)]).astype(np.uint8)
    Image.fromarray(backdrop).save(tmp_path / "beach.png")
    assert main(["image", str(src), "-o", str(out), "--output", "composite", "--background", str(tmp_path / "beach.png"), "-q"]) == 0
    for i, size in enumerate(sizes):
        picture = _rgb(out / f"p{i}.png")
        assert picture.shape == (size[1], size[0], 3)
        _, background = _regions(size)
        assert np.abs(picture[background] - cover(backdrop, size)[background]).max() <= 1


def test_greenscreen_webp_into_a_folder(tmp_path, red_key):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rgb = _scene_photo(src / "a.png")
    assert main(["image", str(src), "-o", str(out), "--output", "green", "--key-color", "#00b140", "--ext", ".webp", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.webp"]
    picture = _rgb(out / "a.webp")
    subject, background = _regions()
    assert np.abs(picture[background] - (0, 0xB1, 0x40)).max() <= 8  # lossy WebP at quality 90
    assert np.abs(picture[subject] - rgb[subject]).max() <= 12


def test_a_folder_s_gif_stills_are_cut_out_as_a_gif_named_alone_is(tmp_path, red_key):
    """A .gif in a folder was skipped without a word, though `image a.gif` works (its first frame)."""
    from PIL import Image

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rgb = _scene_photo(src / "a.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(src / "b.gif")
    assert main(["image", str(src), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    subject, background = _regions()
    alpha = cv2.imread(str(out / "b.png"), cv2.IMREAD_UNCHANGED)[..., 3]
    assert alpha[subject].min() >= 250 and alpha[background].max() <= 5


def test_blur_keeps_the_subject_and_softens_the_rest(tmp_path, red_key):
    photo = tmp_path / "talk.png"
    rgb = _scene_photo(photo, textured=True)  # green stripes in the background
    out = tmp_path / "talk_blur.png"
    assert main(["image", str(photo), "-o", str(out), "--output", "blur", "--blur-sigma", "6", "-q"]) == 0
    picture = _rgb(out)
    subject, background = _regions(margin=8)
    assert np.abs(picture[subject] - rgb[subject]).max() <= 1
    assert picture[background][:, 1].std() < 0.5 * rgb[background][:, 1].std()  # the stripes are blurred away


def test_foreground_is_the_cut_outs_colours_opaque_in_png_and_jpeg(tmp_path, red_key):
    """RVM's fgr for a picture: the RGBA cut-out's colours without its alpha, so JPEG (no transparency) can hold it too."""
    photo = tmp_path / "p.png"
    rgb = _scene_photo(photo, textured=True)
    cut, fgr, jpg = tmp_path / "cut.png", tmp_path / "fgr.png", tmp_path / "fgr.jpg"
    assert main(["image", str(photo), "-o", str(cut), "-q"]) == 0
    assert main(["image", str(photo), "-o", str(fgr), "--output", "foreground", "-q"]) == 0
    assert main(["image", str(photo), "-o", str(jpg), "--output", "foreground", "-q"]) == 0
    assert Image.open(fgr).mode == "RGB" and Image.open(jpg).mode == "RGB"
    assert np.array_equal(np.array(Image.open(fgr)), np.array(Image.open(cut))[..., :3])
    subject, _ = _regions()
    assert np.abs(_rgb(fgr)[subject] - rgb[subject]).max() == 0
    assert np.abs(_rgb(jpg) - _rgb(fgr)).mean() < 4  # JPEG at quality 95


def test_rgba_webp_keeps_the_alpha_exactly(tmp_path, red_key):
    photo = tmp_path / "p.png"
    _scene_photo(photo)
    png, webp = tmp_path / "cut.png", tmp_path / "cut.webp"
    assert main(["image", str(photo), "-o", str(png), "-q"]) == 0
    assert main(["image", str(photo), "-o", str(webp), "-q"]) == 0
    assert np.array_equal(np.array(Image.open(webp))[..., 3], np.array(Image.open(png))[..., 3])  # libwebp's alpha is lossless


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["-o", "{d}/cut.jpg"], "JPEG has no transparency; write .png, .webp or .tif, or choose an opaque --output "
                                 "(foreground, mask, green, composite, blur, overlay)"),  # every opaque one, overlay too
        (["-o", "{d}/folder", "--ext", ".jpg"], "JPEG has no transparency"),
        (["-o", "{d}/folder", "--ext", ".gif"], "--ext .gif: expected .png, .webp, .jpg, .jpeg, .tif, .tiff"),
        (["-o", "{d}/cut.png", "--ext", "webp"], "--ext .webp names the file type in an output folder, and -o cut.png names a .png file; write -o cut.webp"),
        (["-o", "{d}/cut.bmp"], "cannot write {d}/cut.bmp: expected .png, .webp, .jpg, .jpeg, .tif, .tiff"),
        (["-o", "{d}/cut.gif"], "cannot write {d}/cut.gif: expected .png, .webp, .jpg, .jpeg, .tif, .tiff"),  # it made a folder cut.gif/
        (["-o", "{d}/cut.mp4"], "cannot write {d}/cut.mp4: expected .png, .webp, .jpg, .jpeg, .tif, .tiff"),
        (["-o", "{d}/c.png", "--output", "composite"], "--output composite needs --background (a colour or an image)"),
        (["-o", "{d}/c.png", "--output", "green", "--background", "red"], "--background is only used with --output composite, not --output green"),
        (["-o", "{d}/c.png", "--output", "composite", "--background", "{d}/missing.jpg"], "background not found"),
        # ignored without a word: the cut-out came out as if they had not been given
        (["-o", "{d}/c.png", "--key-color", "#00b140"], "--key-color is only used with --output green, not --output rgba"),
        (["-o", "{d}/c.png", "--output", "composite", "--background", "red", "--blur-sigma", "4"], "--blur-sigma is only used with --output blur"),
        (["-o", "{d}/c.png", "--output", "mask", "--no-foreground"], "--no-foreground is only used with an output in colour"),
    ],
)
def test_impossible_outputs_are_one_line_before_any_work(tmp_path, photo, capsys, monkeypatch, args, pattern):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", no_model)
    argv = [a.format(d=tmp_path) for a in args]
    _one_line_error(capsys, main(["image", str(photo), *argv]), pattern.format(d=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_a_video_or_a_bad_lone_picture_fails_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from media import make_video

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the input was read")

    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", no_model)
    video = make_video(tmp_path / "talk.mp4", n_frames=2, with_audio=False).path
    _one_line_error(capsys, main(["image", str(video), "-o", str(tmp_path / "cut.png")]),
                    f"{video} is a video, not a picture: cut videos with `birefvid process {video} -o OUT`")  # fmt: skip
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    _one_line_error(capsys, main(["image", str(bad), "-o", str(tmp_path / "cut.png")]), "bad.png is not a readable image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "talk.mp4"]


def test_a_damaged_gif_is_called_damaged_not_a_video(tmp_path, capsys, monkeypatch):
    """A GIF cut off midway was "a video, not a picture: cut videos with birefvid process", which then said it is
    truncated; `image` reads GIFs (their first frame), so an unreadable one is a damaged picture."""
    from PIL import Image

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the input was read")

    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", no_model)
    whole = tmp_path / "whole.gif"
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(whole)
    data = whole.read_bytes()
    whole.unlink()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) // 2])
    _one_line_error(capsys, main(["image", str(tmp_path / "cut.gif"), "-o", str(tmp_path / "o.png")]), "cut.gif is not a readable image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gif"]


def test_guided_upsampling_puts_a_photos_edge_where_the_picture_has_it(tmp_path, red_key):
    """A 64² model on a 256x192 photo: bilinear misplaces the square's edge by up to a small pixel; guided does not."""
    from process_fixtures import true_mask

    size = (256, 192)
    photo = tmp_path / "p.png"
    _scene_photo(photo, size)
    errors = {}
    for upsample in ("bilinear", "guided"):
        out = tmp_path / f"{upsample}.png"
        assert main(["image", str(photo), "-o", str(out), "--output", "mask", "--upsample", upsample, "-q"]) == 0
        errors[upsample] = np.abs(np.array(Image.open(out)).astype(float) - true_mask(0, size)).mean() / 255
    assert errors["guided"] < 0.5 * errors["bilinear"], errors


def test_a_full_disk_is_one_error_line_and_leaves_no_partial_file(tmp_path, red_key, capsys):
    from fs_fixtures import full_dir

    photos = []
    for i in range(2):  # noise: PNG cannot shrink the two under the 64 kB the disk holds
        photos.append(tmp_path / f"p{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (160, 160, 3), np.uint8)).save(photos[-1])
    with full_dir(tmp_path / "full", "64k") as full:
        code = main(["image", *map(str, photos), "-o", f"{full}/", "--output", "green", "-q"])
        _one_line_error(capsys, code, "No space left on device")
        assert not [p.name for p in full.iterdir() if ".partial-" in p.name]  # no temporary file left behind


@pytest.mark.parametrize("output", ["rgba", "mask", "composite"])
def test_what_a_transparent_picture_hides_stays_hidden(tmp_path, red_key, output):
    """An already cut-out PNG keeps its colour under its transparency; the model sees that colour, but the
    output must not show it (stored sideways, EXIF 6, so the alpha has to be turned as the colour is)."""
    size = (64, 48)
    rgb = _scene_photo(tmp_path / "scene.png", size)
    own = np.full(rgb.shape[:2], 255, np.uint8)
    own[:, :20] = 0  # the left part of the red square, and the blue beside it, cut away
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.dstack([rgb, own])).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "cut.png", exif=exif)
    out = tmp_path / "again.png"
    extra = ["--background", "white"] if output == "composite" else []
    assert main(["image", str(tmp_path / "cut.png"), "-o", str(out), "--output", output, *extra, "-q"]) == 0
    picture = np.array(Image.open(out))
    assert picture.shape[:2] == (48, 64)
    subject, _ = _regions(size)
    hidden, shown = subject & (own == 0), subject & (own == 255)
    assert hidden.any() and shown.any()
    if output == "rgba":
        assert (picture[..., 3][hidden] == 0).all() and (picture[..., 3][shown] == 255).all()
    elif output == "mask":
        assert (picture[hidden] == 0).all() and (picture[shown] == 255).all()
    else:
        assert (picture[hidden] == 255).all() and np.abs(picture[shown].astype(int) - rgb[shown]).max() <= 1


@pytest.mark.parametrize("source, out, extra", [("p.jpg", "cut.png", []), ("p.png", "cut.webp", []), ("p.webp", "white.jpg", ["--output", "composite", "--background", "white"]),
                                                ("p.png", "green.webp", ["--output", "green"])])  # fmt: skip
def test_the_colour_profile_goes_with_the_pixels(tmp_path, red_key, source, out, extra):
    """A phone photo's pixels are in its profile's colours (Display P3): written untagged, viewers take them
    as sRGB and show them washed out. The outputs carry the source's profile, in each format."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # an RGB profile; P3's is one too
    Image.fromarray(_scene_photo(tmp_path / "scene.png")).save(tmp_path / source, icc_profile=icc, quality=95)
    assert main(["image", str(tmp_path / source), "-o", str(tmp_path / out), *extra, "-q"]) == 0
    with Image.open(tmp_path / out) as im:
        assert im.info.get("icc_profile") == icc
        im.load()
    assert cv2.imread(str(tmp_path / out)) is not None  # still a valid file for OpenCV too


def _png_with_orientation(data: bytes, orientation: int) -> bytes:
    """A PNG (as OpenCV encodes it) with an eXIf chunk turning it by EXIF ``orientation``, after IHDR."""
    import struct
    import zlib

    exif = Image.Exif()
    exif[0x0112] = orientation
    body = b"eXIf" + exif.tobytes()[6:]  # the TIFF structure, without JPEG's "Exif\0\0"
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return data[:33] + chunk + data[33:]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_16_bit_pictures_own_alpha_keeps_its_16_bits(tmp_path, red_key, suffix):
    """A 16-bit RGBA PNG or TIFF (stored sideways, orientation 6) with a fine alpha ramp: the cut-out's alpha over the
    subject is the file's, every step of it. Pillow opens such a picture as 8-bit RGBA, which cut it to 256 steps; and
    a TIFF's alpha, which libtiff already turns upright, was turned a second time, across its picture."""
    size = (64, 48)
    rgb = _scene_photo(tmp_path / "scene.png", size).astype(np.uint16) * 257
    own = (20000 + np.arange(size[0])[None, :] * 331 + np.arange(size[1])[:, None] * 17).astype(np.uint16)  # few multiples of 257
    stored = np.ascontiguousarray(np.rot90(np.dstack([rgb, own]), 1))  # orientation 6 turns it back clockwise
    source = tmp_path / f"deep{suffix}"
    if suffix == ".png":
        ok, data = cv2.imencode(".png", cv2.cvtColor(stored, cv2.COLOR_RGBA2BGRA))
        source.write_bytes(_png_with_orientation(data.tobytes(), 6))
    else:
        tifffile = pytest.importorskip("tifffile")  # scikit-image's, which pysodmetrics brings
        tifffile.imwrite(source, stored, photometric="rgb", extrasamples=["unassalpha"], extratags=[(274, "H", 1, 6, True)])
    out = tmp_path / "cut.png"
    assert main(["image", str(source), "-o", str(out), "-q"]) == 0
    alpha = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., 3]
    assert alpha.dtype == np.uint16 and alpha.shape == (48, 64)
    subject, _ = _regions(size)
    assert np.abs(alpha[subject].astype(int) - own[subject]).max() <= 1


@pytest.mark.parametrize("out, extra", [("cut.png", []), ("white.jpg", ["--output", "composite", "--background", "white"]),
                                        ("mask.png", ["--output", "mask"])])  # fmt: skip
def test_dpi_and_pixel_shape_are_kept(tmp_path, red_key, out, extra):
    """A 300 dpi product shot printed at its size before the cut; the output said nothing and printed at 72 or 96 dpi.
    Stored sideways (EXIF 6) with 300x150 dpi, it is shown at 150x300: the cut-out, written upright, says that."""
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb = _scene_photo(tmp_path / "scene.png")
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(tmp_path / "shot.jpg", dpi=(300, 150), exif=exif, quality=95)
    Image.fromarray(rgb).save(tmp_path / "shot.png", dpi=(300, 300))
    cv2.imwrite(str(tmp_path / "shot.tif"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # no resolution: Pillow says 1 dpi, which is not kept
    for source, expected in (("shot.jpg", (150, 300)), ("shot.png", (300, 300)), ("shot.tif", None)):
        target = tmp_path / f"{Path(source).suffix[1:]}-{out}"
        assert main(["image", str(tmp_path / source), "-o", str(target), *extra, "-q"]) == 0
        with Image.open(target) as im:
            assert im.size == (64, 48)
            got = im.info.get("dpi")
            assert (tuple(round(v) for v in got) if got else None) == expected, im.info
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED) is not None  # still a valid file for OpenCV too


def test_an_animated_gif_warns_that_only_its_first_frame_is_cut_out(tmp_path, red_key, caplog):
    frames = [Image.fromarray(np.roll(_scene_photo(tmp_path / "scene.png"), 8 * i, axis=1)) for i in range(3)]
    frames[0].save(tmp_path / "wave.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert main(["image", str(tmp_path / "wave.gif"), "-o", str(tmp_path / "wave.png"), "-q"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{tmp_path / 'wave.gif'} has 3 frames; only the first is cut out "
                        f"(`birefvid process {tmp_path / 'wave.gif'} -o OUT` cuts out them all)"]  # fmt: skip
    caplog.clear()
    assert main(["image", str(tmp_path / "scene.png"), "-o", str(tmp_path / "still.png"), "-q"]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_an_animated_gif_on_standard_input_names_a_file_to_save_for_process(tmp_path, red_key, caplog, monkeypatch):
    """``process`` reads no standard input: the hint for the other frames names a file to save the GIF as, not
    "birefvid process standard input", a command that cannot run."""
    import io

    frames = [Image.fromarray(np.roll(_scene_photo(tmp_path / "scene.png"), 8 * i, axis=1)) for i in range(3)]
    frames[0].save(tmp_path / "wave.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO((tmp_path / "wave.gif").read_bytes())))
    assert main(["image", "-", "-o", str(tmp_path / "wave.png"), "-q"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["standard input has 3 frames; only the first is cut out "
                        "(saved to a file, anim.gif, `birefvid process anim.gif -o OUT` cuts out them all)"], warnings  # fmt: skip


def test_tiff_output_for_print_and_retouching(tmp_path, red_key):
    """TIFF, what print shops and retouchers ask for: straight alpha declared as alpha (ExtraSamples 2; OpenCV writes
    none, and editors then show a fourth channel, not transparency), the colour profile, the DPI, and 16 bits."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = _scene_photo(tmp_path / "scene.png")
    Image.fromarray(rgb).save(tmp_path / "shot.jpg", icc_profile=icc, dpi=(300, 300), quality=95)
    assert main(["image", str(tmp_path / "shot.jpg"), "-o", str(tmp_path / "cut.tif"), "-q"]) == 0
    subject, background = _regions()
    with Image.open(tmp_path / "cut.tif") as im:
        assert im.mode == "RGBA" and im.tag_v2.get(338) in (2, (2,))
        assert im.info.get("icc_profile") == icc and tuple(round(v) for v in im.info["dpi"]) == (300, 300)
        alpha = np.array(im)[..., 3]
    assert alpha[subject].min() == 255 and alpha[background].max() == 0
    deep = rgb.astype(np.uint16) * 257 ^ 3  # 65532 and 3: not a widened 8-bit picture
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    assert main(["image", str(tmp_path / "deep.png"), "-o", str(tmp_path), "--ext", ".tiff", "--output", "green", "-q"]) == 0
    picture = cv2.cvtColor(cv2.imread(str(tmp_path / "deep.tiff"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert picture.dtype == np.uint16 and np.array_equal(picture[subject], deep[subject])


def test_a_new_output_folder_is_made_only_when_a_picture_goes_into_it(tmp_path, red_key, capsys):
    """A failed run left an empty output folder behind, made before anything was read."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    _one_line_error(capsys, main(["image", str(bad), "-o", f"{tmp_path / 'cutouts'}/", "-q"]), "bad.png is not a readable image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]
    _scene_photo(tmp_path / "p.png")
    assert main(["image", str(tmp_path / "p.png"), "-o", f"{tmp_path / 'a' / 'b'}/", "-q"]) == 0  # made, parents too
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["p.png"]
    _one_line_error(capsys, main(["image", str(tmp_path / "p.png"), "-o", f"{bad / 'sub'}/", "-q"]), f"cannot create the folder {bad / 'sub'}")


@pytest.mark.parametrize("limit", [2000, 1000], ids=["warned", "refused"])
def test_a_very_large_picture_keeps_its_profile_dpi_and_alpha(tmp_path, red_key, monkeypatch, limit):
    """Pillow's decompression-bomb limit (89 megapixels for a warning, twice that for an error), lowered here so a
    64x48 photo stands for a 140 or 190-megapixel panorama: OpenCV decodes it, but its header and alpha, read with
    Pillow, printed a Python warning or were dropped without a word."""
    import warnings

    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = _scene_photo(tmp_path / "scene.png")
    own = np.full(rgb.shape[:2], 255, np.uint8)
    own[:, :20] = 0
    Image.fromarray(np.dstack([rgb, own])).save(tmp_path / "pano.png", icc_profile=icc, dpi=(300, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["image", str(tmp_path / "pano.png"), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == limit  # put back
    monkeypatch.undo()
    with Image.open(tmp_path / "cut.png") as im:
        assert im.info.get("icc_profile") == icc and tuple(round(v) for v in im.info["dpi"]) == (300, 300)
        alpha = np.array(im)[..., 3]
    subject, _ = _regions()
    assert (alpha[subject & (own == 0)] == 0).all() and (alpha[subject & (own == 255)] == 255).all()


def test_an_input_is_never_written_over(tmp_path, red_key, capsys):
    """`image photos/ -o photos/ --overwrite` replaced each PNG photo with its cut-out: the originals were lost."""
    src = tmp_path / "photos"
    src.mkdir()
    _scene_photo(src / "a.png")
    _scene_photo(src / "b.jpg")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    _one_line_error(capsys, main(["image", str(src), "-o", str(src), "--overwrite", "-q"]),
                    f"{src / 'a.png'} is one of the inputs; write the cut-outs to another file or folder")  # fmt: skip
    _one_line_error(capsys, main(["image", str(src / "b.jpg"), "-o", str(src / "b.jpg"), "--output", "mask", "--overwrite", "-q"]),
                    "b.jpg is one of the inputs")  # fmt: skip
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    assert main(["image", str(src), "-o", str(src), "--ext", ".webp", "-q"]) == 0  # beside them is fine
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a.webp", "b.jpg", "b.webp"]


def test_the_background_picture_is_never_written_over(tmp_path, red_key, capsys):
    """`image shoe.jpg -o out/ --output composite --background out/shoe.png --overwrite` replaced the background
    with the composite over it, exit 0 (`process` refuses its --background as -o)."""
    _scene_photo(tmp_path / "shoe.png")
    out = tmp_path / "out"
    out.mkdir()
    _scene_photo(out / "shoe.png", textured=True)  # the background, where the cut-out of shoe.png goes
    before = (out / "shoe.png").read_bytes()
    _one_line_error(capsys, main(["image", str(tmp_path / "shoe.png"), "-o", str(out), "--output", "composite",
                                  "--background", str(out / "shoe.png"), "--overwrite", "-q"]),
                    f"writing {out / 'shoe.png'} would replace {out / 'shoe.png'}, which this run reads")  # fmt: skip
    _one_line_error(capsys, main(["image", str(tmp_path / "shoe.png"), "-o", str(out / "shoe.png"), "--output", "composite",
                                  "--background", str(out / "shoe.png"), "--overwrite", "-q"]), "which this run reads")  # fmt: skip
    assert (out / "shoe.png").read_bytes() == before
    assert main(["image", str(tmp_path / "shoe.png"), "-o", str(tmp_path / "cut.png"), "--output", "composite",
                 "--background", str(out / "shoe.png"), "-q"]) == 0  # beside it is fine


def test_a_transparent_background_is_warned_of_once(tmp_path, red_key, caplog):
    """It was opened once to check it and again for each size of photo, the same warning each time."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _scene_photo(photos / "a.png")
    _scene_photo(photos / "b.png", size=(48, 64))
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 2], rgba[:, 20:, 3] = 200, 255  # half of it see-through
    Image.fromarray(rgba).save(tmp_path / "logo.png")
    assert main(["image", str(photos), "-o", str(tmp_path / "out"), "--output", "composite", "--background", str(tmp_path / "logo.png")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if "has transparent parts" in w] == [
        f"background {tmp_path / 'logo.png'} has transparent parts; they are shown over black (flatten it to choose another colour)"], warnings
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_a_photo_is_not_written_over_under_another_letter_case(tmp_path, red_key, capsys):
    """On macOS' case-insensitive disk IMG_1.jpg is IMG_1.JPG: ``image photos/ -o photos/ --ext .jpg --overwrite``
    over a camera's photos replaced each with its cut-out. A hard link stands in for that disk here."""
    import os

    src = tmp_path / "photos"
    src.mkdir()
    _scene_photo(src / "IMG_1.JPG")
    os.link(src / "IMG_1.JPG", src / "IMG_1.jpg")  # one file, two spellings, as macOS sees it
    before = (src / "IMG_1.JPG").read_bytes()
    _one_line_error(capsys, main(["image", str(src / "IMG_1.JPG"), "-o", str(src / "IMG_1.jpg"), "--output", "green", "--overwrite", "-q"]),
                    "IMG_1.jpg is one of the inputs")  # fmt: skip
    assert (src / "IMG_1.JPG").read_bytes() == before


def test_bit_depth_16_into_an_8_bit_format_says_so(tmp_path, red_key, caplog):
    """`--bit-depth 16 -o cut.webp` wrote 8 bits without a word; into PNG it gives 16 and no warning."""
    _scene_photo(tmp_path / "p.png")
    assert main(["image", str(tmp_path / "p.png"), "-o", str(tmp_path / "cut.webp"), "--bit-depth", "16", "-q"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["--bit-depth 16: .webp pictures hold 8 bits a sample, so they are written at 8; write .png or .tif for 16"]
    caplog.clear()
    assert main(["image", str(tmp_path / "p.png"), "-o", str(tmp_path / "cut.png"), "--bit-depth", "16", "-q"]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_a_cmyk_photo_is_converted_through_its_own_profile(tmp_path, red_key):
    """A catalogue's CMYK JPEG (Adobe-inverted, as Photoshop writes) with its CMYK profile: the colours are
    littleCMS's through that profile, as a colour-managed viewer shows the file, not the profile-blind conversion."""
    import io

    from PIL import ImageCms

    icc = cmyk_profile()
    cmyk = Image.fromarray(_scene_photo(tmp_path / "scene.png")).convert("CMYK")
    cmyk.save(tmp_path / "catalogue.jpg", icc_profile=icc, quality=95)
    assert main(["image", str(tmp_path / "catalogue.jpg"), "-o", str(tmp_path / "white.png"), "--output", "composite",
                 "--background", "white", "-q"]) == 0  # fmt: skip
    with Image.open(tmp_path / "catalogue.jpg") as im:  # the JPEG as decoded, through its profile
        shown = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB")
        naive = np.array(im.convert("RGB")).astype(int)
    expected = np.array(shown).astype(int)
    picture = _rgb(tmp_path / "white.png")
    subject, background = _regions()
    assert np.abs(expected[subject] - naive[subject]).max() > 40  # the two differ: the test tells them apart
    assert np.abs(picture[subject] - expected[subject]).max() <= 1
    assert (picture[background] == 255).all()


@pytest.mark.parametrize("name", ["scan.jpg", "scan.png", "scan-la.png"])
def test_a_gray_photo_is_converted_through_its_own_profile(tmp_path, red_key, name):
    """A gray picture with its gray profile (Photoshop's "Dot Gain 20%" is one) comes out as littleCMS shows it in sRGB;
    its values were taken as sRGB gray and the profile dropped. (--invert: the red key sees gray as background.)"""
    import io

    from PIL import ImageCms

    icc = gray_profile(1.0)
    gray = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1)), "L")  # a ramp, 64x48
    if name == "scan-la.png":  # gray and alpha: OpenCV hands it over as RGB
        gray = Image.merge("LA", [gray, Image.new("L", gray.size, 255)])
    gray.save(tmp_path / name, icc_profile=icc, **({"quality": 95} if name.endswith(".jpg") else {}))
    assert main(["image", str(tmp_path / name), "-o", str(tmp_path / "cut.png"), "--invert", "-q"]) == 0
    with Image.open(tmp_path / name) as im:
        im = im.convert("L")
        expected = np.array(ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
                                                      outputMode="RGB")).astype(int)  # fmt: skip
        naive = np.array(im.convert("RGB")).astype(int)
    rgba = np.array(Image.open(tmp_path / "cut.png")).astype(int)
    assert (rgba[..., 3] == 255).all()
    assert np.abs(expected - naive).max() > 40  # the two differ: the test tells them apart
    assert np.abs(rgba[..., :3] - expected).max() <= 1


def test_a_video_background_is_refused_not_played_across_the_photos(tmp_path, photo, capsys, monkeypatch):
    """`image --output composite --background clip.mp4` was taken: each photo got the video's next frame."""
    from media import make_video

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", no_model)
    video = make_video(tmp_path / "clip.mp4", n_frames=2, with_audio=False).path
    _one_line_error(capsys, main(["image", str(photo), "-o", str(tmp_path / "c.png"), "--output", "composite", "--background", str(video)]),
                    f"--background {video} is a video; birefvid image takes a colour or a picture")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "photo.png"]


def test_pictures_in_subfolders_are_named_not_skipped_without_a_word(tmp_path, red_key, caplog, capsys):
    """rembg's `p` users sort shoots into day1/, day2/: those pictures were left out of a folder's run silently."""
    shoot, out = tmp_path / "shoot", tmp_path / "shoot" / "cutouts"
    (shoot / "day2").mkdir(parents=True)
    _scene_photo(shoot / "a.png")
    _scene_photo(shoot / "day2" / "b.png")
    assert main(["image", str(shoot), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{shoot}: pictures in subfolders are not read; 1 subfolder holds some (day2): add --recursive (OUT mirrors "
                        f"the subfolders), or name each as an input, e.g. `birefvid image {shoot / 'day2'} -o OUT`"]  # fmt: skip
    caplog.clear()
    assert main(["image", str(shoot), "-o", str(out), "-q", "--overwrite"]) == 0  # the output folder inside is no input
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "cutouts" in r.getMessage()]
    (shoot / "a.png").unlink()
    _one_line_error(capsys, main(["image", str(shoot), "-o", str(tmp_path / "o2"), "-q"]), f"no pictures directly in {shoot}; 2 subfolders hold some (cutouts, day2)")


def test_an_output_folder_deeper_inside_the_input_is_no_subfolder_to_add(tmp_path, red_key, caplog):
    """`image shoot/ -o shoot/out/cutouts/` run again warned that subfolder out holds pictures to add as input:
    the cut-outs of the run before. A picture of its own beside them still is one."""
    shoot, out = tmp_path / "shoot", tmp_path / "shoot" / "out" / "cutouts"
    shoot.mkdir()
    _scene_photo(shoot / "a.png")
    assert main(["image", str(shoot), "-o", str(out), "-q"]) == 0
    caplog.clear()
    assert main(["image", str(shoot), "-o", str(out), "-q", "--overwrite"]) == 0
    assert not [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    _scene_photo(shoot / "out" / "b.png")
    assert main(["image", str(shoot), "-o", str(out), "-q", "--overwrite"]) == 0
    assert "1 subfolder holds some (out)" in caplog.text


def test_recursive_mirrors_the_shoot_s_subfolders_into_the_output_folder(tmp_path, red_key, caplog, capsys):
    """A shoot sorted into day1/, day2/ got only a warning naming the subfolders: --recursive cuts them all out,
    as batch --recursive does: the output folder mirrors the tree, leaving out hidden folders, itself and link loops."""
    shoot, out = tmp_path / "shoot", tmp_path / "shoot" / "cutouts"
    for sub in ("day1", "day2/cam1", ".thumbs"):
        (shoot / sub).mkdir(parents=True)
    for name in ("a.png", "day1/a.png", "day2/cam1/b.png", ".thumbs/t.png"):
        _scene_photo(shoot / name)
    (shoot / "day2" / "cam1" / "up").symlink_to(shoot, target_is_directory=True)  # a loop: not followed
    (shoot / "latest").symlink_to(shoot / "day1", target_is_directory=True)  # day1 again: cut out once
    assert main(["image", str(shoot), "-r", "-o", str(out), "-q"]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "day1/a.png", "day2/cam1/b.png"]
    assert "1 picture reached twice through a linked folder, cut out once" in caplog.text
    assert np.array(Image.open(out / "day2" / "cam1" / "b.png")).shape == (48, 64, 4)
    Image.new("RGBA", (64, 48)).save(out / "day1" / "a.png")  # an interrupted run's: kept with --skip-existing, per picture
    (out / "day2" / "cam1" / "b.png").unlink()
    assert main(["image", str(shoot), "-r", "-o", str(out), "--skip-existing"]) == 0  # cutouts/ inside is no input
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"wrote {out / 'day2' / 'cam1' / 'b.png'} (2 already there kept)"
    assert np.array(Image.open(out / "day1" / "a.png")).max() == 0 and (out / "day2" / "cam1" / "b.png").is_file()
    assert main(["image", str(shoot), "-r", "-o", str(out), "-q", "--overwrite"]) == 0
    assert np.array(Image.open(out / "day1" / "a.png"))[..., 3].max() == 255  # replaced by a real cut-out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == written


def test_recursive_does_not_follow_a_link_to_a_folder_above_the_shoot(tmp_path, red_key, caplog):
    """A link to the folder above the named one (`ln -s ../..`, or to / or home) walked everything there: the shoot's
    neighbours were cut out into its output folder, where only a link back into the walk was stopped."""
    shoot = tmp_path / "shoot"
    (shoot / "day1").mkdir(parents=True)
    _scene_photo(shoot / "day1" / "a.png")
    (tmp_path / "other").mkdir()
    _scene_photo(tmp_path / "other" / "x.png")  # beside the shoot: not the user's input
    (shoot / "day1" / "up").symlink_to(tmp_path, target_is_directory=True)
    assert main(["image", str(shoot), "-r", "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["day1/a.png"]
    assert f"{shoot / 'day1' / 'up'} is a link to {tmp_path}, a folder that holds it: not followed" in caplog.text


def test_recursive_goes_past_a_subfolder_it_may_not_read(tmp_path, red_key, caplog, monkeypatch):
    """An external drive's lost+found (or a Windows disk's System Volume Information) ended the walk in a traceback."""
    (tmp_path / "drive" / "lost+found").mkdir(parents=True)
    _scene_photo(tmp_path / "drive" / "a.png")
    from fs_fixtures import unreadable_folders

    unreadable_folders(monkeypatch, "lost+found")
    assert main(["image", str(tmp_path / "drive"), "-r", "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    assert f"{tmp_path / 'drive' / 'lost+found'}: not read (Permission denied)" in caplog.text


def test_videos_in_a_folder_are_named_not_skipped_without_a_word(tmp_path, red_key, caplog, capsys):
    """transparent-background's `--source DIR` cuts out a folder's videos and pictures: image left the videos out silently."""
    folder = tmp_path / "media"
    folder.mkdir()
    _scene_photo(folder / "a.png")
    (folder / "talk.mp4").write_bytes(b"a video")
    assert main(["image", str(folder), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    hint = f"1 video is not read (talk.mp4): `birefvid batch {folder} --output-dir OUT` cuts out videos"
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [f"{folder}: {hint}"]
    (folder / "a.png").unlink()
    caplog.clear()
    _one_line_error(capsys, main(["image", str(folder), "-o", str(tmp_path / "o2"), "-q"]), f"); {hint}")  # no pictures: the error says it
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def _broken_pictures(folder: Path) -> dict[str, str]:
    """Pictures as users get them broken, each with the reason its error line must give."""
    y, x = np.mgrid[0:48, 0:64]
    Image.fromarray(np.stack([x * 4, y * 5, x + y], -1).astype(np.uint8)).save(folder / "whole.png")
    Image.fromarray(np.stack([x * 4, y * 5, x + y], -1).astype(np.uint8)).save(folder / "whole.jpg", quality=90)
    png, jpg = (folder / "whole.png").read_bytes(), (folder / "whole.jpg").read_bytes()
    flipped = bytearray(png)
    flipped[len(png) // 2] ^= 0xFF  # in the compressed picture: libpng's "IDAT: incorrect data check"
    broken = {"empty.png": b"", "page.jpg": b"<!DOCTYPE html><html><body>Not found</body></html>\n",
              "cut.png": png[: len(png) * 7 // 10], "cut.jpg": jpg[: len(jpg) * 7 // 10], "flipped.png": bytes(flipped)}
    for name, data in broken.items():
        (folder / name).write_bytes(data)
    (folder / "whole.png").unlink()
    (folder / "whole.jpg").unlink()
    return {"empty.png": "(the file is empty, 0 bytes)",
            "page.jpg": "(it holds text, not a picture: a web page or text file under a picture's name?)",
            "cut.png": "(a PNG cut off before its end, as an interrupted download or copy leaves it)",
            "cut.jpg": "(a JPEG cut off before its end, as an interrupted download or copy leaves it)",
            "flipped.png": "(its PNG data is damaged)"}


def test_a_broken_picture_is_one_line_that_says_why(tmp_path, capfd):
    """A broken picture was "X is not a readable image" whatever was wrong (empty, a web page saved as .jpg, cut off),
    and a damaged PNG added libpng's own "libpng error: IDAT: incorrect data check" line to standard error."""
    (tmp_path / "in").mkdir()
    reasons = _broken_pictures(tmp_path / "in")
    for name, reason in reasons.items():
        code = main(["image", str(tmp_path / "in" / name), "-o", str(tmp_path / "cut.png"), "--model", "tiny", "-q"])
        lines = capfd.readouterr().err.strip().splitlines()
        assert code == 2 and lines == [f"birefvid: error: {tmp_path / 'in' / name} is not a readable image {reason}"], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no cut-out, no temporary file


def test_a_video_under_a_pictures_name_is_one_line_that_says_so(tmp_path, capfd):
    """A clip saved or renamed as a picture (an MP4 as ``frame.png``, a Matroska as ``still.jpg``) was "X is not a
    readable image", with no word of why: now the line names the video container and points at ``process``."""
    for name, fmt in (("frame.png", "mp4"), ("still.jpg", "matroska")):
        clip = tmp_path / name
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=64x48:r=5:d=0.4", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", "-f", fmt, str(clip)], check=True)  # fmt: skip
        code = main(["image", str(clip), "-o", str(tmp_path / "cut.png"), "--model", "tiny", "-q"])
        lines = capfd.readouterr().err.strip().splitlines()
        kind = "MP4/MOV" if fmt == "mp4" else "Matroska/WebM"
        assert code == 2 and lines == [f"birefvid: error: {clip} is not a readable image (it holds a video ({kind}), not a "
                                       "picture: cut videos with `birefvid process`)"], lines  # fmt: skip
        assert not (tmp_path / "cut.png").exists()


def test_a_heic_brand_is_no_video():
    """HEIC and AVIF share MP4's ``ftyp`` box: a damaged one is no video under a picture's name."""
    from birefvid.io.image_source import unreadable_reason

    for brand in (b"heic", b"mif1", b"avif"):
        assert "video" not in (unreadable_reason(b"\x00\x00\x00\x18ftyp" + brand + b"\x00" * 64) or "")
    assert "MP4/MOV" in unreadable_reason(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)


def test_a_picture_brand_among_the_compatible_ones_or_a_cr3_is_no_video(tmp_path, capfd):
    """The ftyp check looked at the major brand only: a HEIF naming ``miaf`` among its compatible brands alone, and a
    Canon CR3 raw (major brand ``crx ``), were said to hold a video and pointed at ``birefvid process``."""
    import struct

    from birefvid.io.image_source import unreadable_reason

    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        return struct.pack(">I", 16 + 4 * len(compatible)) + b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)

    assert "video" not in (unreadable_reason(ftyp(b"MiHE", b"miaf", b"MiHE") + b"\x00" * 64) or "")
    assert "MP4/MOV" in unreadable_reason(ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41") + b"\x00" * 64)
    raw = tmp_path / "IMG_0001.CR3"  # what a Canon EOS R writes: ftyp crx, then moov with the pictures
    raw.write_bytes(ftyp(b"crx ", b"crx ", b"isom") + struct.pack(">I", 16) + b"moov" + b"\x00" * 2000)
    code = main(["image", str(raw), "-o", str(tmp_path / "cut.png"), "--model", "tiny", "-q"])
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and lines == [f"birefvid: error: {raw} is not a readable image (a Canon CR3 raw photo, which is not "
                                   "decoded here: develop or export it as TIFF or JPEG first)"], lines  # fmt: skip
    assert not (tmp_path / "cut.png").exists()


def _huge_png(path: Path, side: int = 40000) -> Path:
    """A valid 1-bit PNG of side x side pixels in a few hundred KB: 1.6 gigapixels, over OpenCV's 2^30."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * (side // 8)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_picture_over_opencvs_size_limit_is_one_line_with_its_size(tmp_path, capfd):
    """A 40000x40000 PNG (a decompression bomb, or a huge scan: 281 KB) ended image, process and eval with OpenCV's
    "Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS" traceback, exit 1."""
    (tmp_path / "in").mkdir()
    huge = _huge_png(tmp_path / "in" / "huge.png")
    reason = (f"birefvid: error: {huge} is not a readable image (it is 40000x40000 pixels, 1,600 megapixels, more than the "
              "1,074 OpenCV decodes; scale it down first, or raise OPENCV_IO_MAX_IMAGE_PIXELS where the memory allows)")
    for argv in (["image", str(huge), "-o", str(tmp_path / "cut.png"), "--model", "tiny"],
                 ["process", str(tmp_path / "in"), "-o", str(tmp_path / "cut.mkv"), "--output", "mask", "--model", "tiny"],
                 ["eval", str(tmp_path / "in"), str(tmp_path / "in")]):
        code = main([*argv, "-q"])
        lines = capfd.readouterr().err.strip().splitlines()
        assert code == 2 and lines == [reason], (argv[0], lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]

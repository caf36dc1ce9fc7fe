"""DIS5K/DUTS folder dataset: loads pairs, and names the bad file in every error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from birefvid.data import FolderDataset
from birefvid.errors import DataError


def _write_pair(root: Path, stem: str, size=(40, 50), ext=".jpg") -> None:
    (root / "im").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(parents=True, exist_ok=True)
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)  # BGR red on the left
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 255
    cv2.imwrite(str(root / "im" / f"{stem}{ext}"), img)
    cv2.imwrite(str(root / "gt" / f"{stem}.png"), mask)


def test_loads_and_resizes(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b", ext=".png")
    ds = FolderDataset(tmp_path, 32)
    assert len(ds) == 4  # two pairs, each also mirrored
    x, m = ds[0]
    assert x.shape == (3, 32, 32) and m.shape == (1, 32, 32)
    assert float(m[0, :, :14].min()) > 0.9 and float(m[0, :, 18:].max()) < 0.1
    assert x[0, :, :14].mean() > x[2, :, :14].mean()  # RGB order: red channel high on the left
    _, m_flipped = ds[2]
    assert float(m_flipped[0, :, 18:].min()) > 0.9  # the mirrored copy


def test_empty_folder(tmp_path):
    (tmp_path / "im").mkdir()
    (tmp_path / "gt").mkdir()
    with pytest.raises(DataError, match="no images in .*im"):
        FolderDataset(tmp_path, 32)


def test_missing_layout(tmp_path):
    with pytest.raises(DataError, match="im is not a folder"):
        FolderDataset(tmp_path, 32)


def test_image_without_mask(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    (tmp_path / "gt" / "b.png").unlink()
    with pytest.raises(DataError, match=r"b\.jpg has no mask"):
        FolderDataset(tmp_path, 32)


def test_mask_size_mismatch(tmp_path):
    _write_pair(tmp_path, "a")
    cv2.imwrite(str(tmp_path / "gt" / "a.png"), np.zeros((20, 20), np.uint8))
    with pytest.raises(DataError, match=r"a\.png is 20x20 but its image .*a\.jpg is 50x40"):
        FolderDataset(tmp_path, 32)


@pytest.mark.parametrize("which", ["im/a.jpg", "gt/a.png"])
def test_corrupt_file(tmp_path, which):
    _write_pair(tmp_path, "a")
    (tmp_path / which).write_bytes(b"\x00garbage, not an image" * 10)
    with pytest.raises(DataError, match=f"cannot read .*{which}"):
        FolderDataset(tmp_path, 32)


def test_truncated_file_fails_on_read(tmp_path):
    _write_pair(tmp_path, "a", size=(64, 64))
    path = tmp_path / "im" / "a.jpg"
    data = path.read_bytes()
    path.write_bytes(data[:120])  # header survives, pixels do not
    try:
        ds = FolderDataset(tmp_path, 32, flip=False)
    except DataError as exc:  # caught up front: fine too
        assert "a.jpg" in str(exc)
        return
    with pytest.raises(DataError, match=r"a\.jpg"):
        ds[0]


def _rewrite_masks(root: Path, how: str) -> None:
    """Save every mask of ``root/gt`` again as a user's tool might have: 0/1, a VOC palette, an RGBA cut-out."""
    from PIL import Image

    for path in (root / "gt").glob("*.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127
        if how == "zero_one":
            cv2.imwrite(str(path), mask.astype(np.uint8))
        elif how == "palette":
            im = Image.fromarray(mask.astype(np.uint8), "P")
            im.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # VOC/DAVIS: object 1 is dark red, luminance 38
            im.save(path)
        else:  # a cut-out: colour everywhere (bright background), the mask in its alpha
            rgba = np.full((*mask.shape, 4), 230, np.uint8)
            rgba[..., 3] = np.where(mask, 255, 0)
            cv2.imwrite(str(path), rgba)


@pytest.mark.parametrize("how", ["zero_one", "palette", "rgba"])
def test_masks_are_read_as_eval_reads_ground_truth(tmp_path, how):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    _rewrite_masks(tmp_path, how)
    ds = FolderDataset(tmp_path, 32, flip=False)
    for i in range(len(ds)):
        _, m = ds[i]
        assert float(m[0, :, :14].min()) > 0.9 and float(m[0, :, 18:].max()) < 0.1, (how, i)


@pytest.mark.parametrize("ext", [".jpg", ".tif"])
def test_phone_photo_stored_sideways_pairs_with_the_mask_drawn_upright(tmp_path, ext):
    from PIL import Image

    _write_pair(tmp_path, "a")  # upright 50x40, red and foreground on the left
    upright = cv2.imread(str(tmp_path / "im" / "a.jpg"))
    (tmp_path / "im" / "a.jpg").unlink()
    stored = Image.fromarray(cv2.cvtColor(np.rot90(upright).copy(), cv2.COLOR_BGR2RGB))  # as the phone stores it
    exif = stored.getexif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    stored.save(tmp_path / "im" / f"a{ext}", exif=exif.tobytes())
    ds = FolderDataset(tmp_path, 32, flip=False)
    x, m = ds[0]
    assert float(m[0, :, :14].min()) > 0.9
    assert x[0, :, :14].mean() > x[2, :, :14].mean() and x[0, :, 18:].mean() < x[2, :, 18:].mean() + 0.5


def test_an_annotation_saved_as_rgb_colours_is_read_as_its_objects(tmp_path):
    """CVAT exports label maps as RGB PNGs in VOC colours: by luminance the dark red object (128, 0, 0) was 38/255,
    a target that taught the model that the object is background."""
    _write_pair(tmp_path, "a")
    mask = tmp_path / "gt" / "a.png"
    objects = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127
    bgr = np.zeros((*objects.shape, 3), np.uint8)
    bgr[objects] = (0, 0, 128)  # VOC's object 1, dark red
    bgr[:, 22:25] = (192, 224, 224)  # VOC's void colour along the object's edge: not foreground
    cv2.imwrite(str(mask), bgr)
    _, m = FolderDataset(tmp_path, 32, flip=False)[0]
    assert float(m[0, :, :13].min()) > 0.9 and float(m[0, :, 18:].max()) < 0.1


def test_a_zero_one_mask_among_0_255_ones_is_read_as_foreground(tmp_path):
    """Two datasets merged, one saved 0/1: the set as a whole is 0/255, and its 0/1 masks trained as all background."""
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    mask = tmp_path / "gt" / "b.png"
    cv2.imwrite(str(mask), (cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8))
    ds = FolderDataset(tmp_path, 32, flip=False)
    for i in range(2):
        _, m = ds[i]
        assert float(m[0, :, :14].min()) > 0.9 and float(m[0, :, 18:].max()) < 0.1, i


def test_a_mask_drawn_on_a_phone_photo_as_stored_says_so(tmp_path):
    from PIL import Image

    _write_pair(tmp_path, "a", size=(40, 50))
    stored = Image.fromarray(np.zeros((50, 40, 3), np.uint8))  # 40x50 as stored, 50x40 once turned upright
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(tmp_path / "im" / "a.jpg", exif=exif.tobytes())
    cv2.imwrite(str(tmp_path / "gt" / "a.png"), np.zeros((50, 40), np.uint8))  # drawn on the stored pixels
    with pytest.raises(DataError, match=r"a\.png is 40x50 but its image .*a\.jpg is 50x40 \(the image is 40x50 as stored.*EXIF"):
        FolderDataset(tmp_path, 32)


def test_every_unusable_image_is_counted_in_one_error(tmp_path):
    """Training refused the first unusable image only: a user fixing 12 of them started training 12 times."""
    for stem in "abcdef":
        _write_pair(tmp_path, stem)
    for stem in "bcd":
        (tmp_path / "gt" / f"{stem}.png").unlink()
    cv2.imwrite(str(tmp_path / "gt" / "f.png"), np.zeros((20, 20), np.uint8))
    with pytest.raises(DataError) as err:
        FolderDataset(tmp_path, 32)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"4 of the 6 images in {tmp_path / 'im'} cannot be used: ")
    assert "b.jpg has no mask" in message and "d.jpg has no mask" in message and message.endswith("; and 1 more")


def test_duts_tr_as_downloaded(tmp_path):
    _write_pair(tmp_path, "ILSVRC2012_test_00000004")
    (tmp_path / "im").rename(tmp_path / "DUTS-TR-Image")
    (tmp_path / "gt").rename(tmp_path / "DUTS-TR-Mask")
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert [p.image.parent.name for p in ds.pairs] == ["DUTS-TR-Image"] and ds.pairs[0].mask.parent.name == "DUTS-TR-Mask"


@pytest.mark.parametrize("names", [("images", "masks"), ("Images", "Masks"), ("img", "mask")])
def test_images_and_masks_folders_are_a_layout(tmp_path, names):
    """The common images/ + masks/ layout was refused: 'im is not a folder', with a list of layouts without it."""
    _write_pair(tmp_path, "a")
    (tmp_path / "im").rename(tmp_path / names[0])
    (tmp_path / "gt").rename(tmp_path / names[1])
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert [(p.image.parent.name, p.mask.parent.name) for p in ds.pairs] == [names]


def test_the_layouts_error_names_images_and_masks(tmp_path):
    (tmp_path / "images").mkdir()  # no masks/ beside it
    with pytest.raises(DataError, match=r"root/images/\*\.jpg \+ root/masks/\*\.png"):
        FolderDataset(tmp_path, 32)


def test_dis5k_root_names_the_datasets_inside(tmp_path):
    for part in ("DIS-TR", "DIS-VD"):
        _write_pair(tmp_path / part, "a")
    with pytest.raises(DataError, match="its subfolders DIS-TR, DIS-VD are datasets"):
        FolderDataset(tmp_path, 32)


def test_two_images_of_one_name_are_named_not_called_maskless(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "a", ext=".png")  # a.jpg and a.png, one gt/a.png
    with pytest.raises(DataError, match=r"a\.jpg and .*a\.png share the name 'a'"):
        FolderDataset(tmp_path, 32)


@pytest.mark.parametrize("flat", [False, True])
def test_jpeg_masks_pair_with_their_images(tmp_path, flat):
    """Masks saved as JPEG (compression noise and all) were refused as missing: 'a.jpg has no mask; expected
    gt/a.png' beside the very gt/a.jpg."""
    _write_pair(tmp_path, "a")
    mask = tmp_path / "gt" / "a.png"
    cv2.imwrite(str(mask.with_suffix(".jpg")), cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE), [cv2.IMWRITE_JPEG_QUALITY, 70])
    mask.unlink()
    if flat:
        _flatten(tmp_path)
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert [(p.image.name, p.mask.name) for p in ds.pairs] == [("a.jpg", "a_mask.jpg" if flat else "a.jpg")]
    _, m = ds[0]
    assert float(m[0, :, :14].min()) > 0.9 and float(m[0, :, 18:].max()) < 0.1


def test_of_two_masks_of_one_name_the_png_is_taken_and_two_others_are_refused(tmp_path):
    _write_pair(tmp_path, "a")
    (tmp_path / "gt" / "a.jpg").write_bytes(b"a preview, say")
    assert [p.mask.name for p in FolderDataset(tmp_path, 32).pairs] == ["a.png"]
    (tmp_path / "gt" / "a.png").rename(tmp_path / "gt" / "a.bmp")
    with pytest.raises(DataError, match=r"a\.bmp and .*a\.jpg are both masks of 'a'"):
        FolderDataset(tmp_path, 32)


def _flatten(root: Path, ending: str = "_mask") -> None:
    """Move a DIS-layout dataset into the flat layout: im/x.jpg -> x.jpg, gt/x.png -> x{ending}.png."""
    for image in (root / "im").iterdir():
        image.rename(root / image.name)
    for mask in (root / "gt").iterdir():
        mask.rename(root / f"{mask.stem}{ending}{mask.suffix}")
    (root / "im").rmdir()
    (root / "gt").rmdir()


@pytest.mark.parametrize("ending", ["_mask", "_matte"])
def test_flat_layout_pairs_x_with_its_mask_beside_it(tmp_path, ending):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b", ext=".png")  # a PNG picture is an image, b_mask.png its mask
    _flatten(tmp_path, ending)
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert [(p.image.name, p.mask.name) for p in ds.pairs] == [("a.jpg", f"a{ending}.png"), ("b.png", f"b{ending}.png")]
    for i in range(len(ds)):
        x, m = ds[i]
        assert float(m[0, :, :14].min()) > 0.9 and float(m[0, :, 18:].max()) < 0.1
        assert x[0, :, :14].mean() > x[2, :, :14].mean()


@pytest.mark.parametrize("flat", [False, True])
def test_a_picture_named_on_a_mac_pairs_with_its_mask_named_elsewhere(tmp_path, flat):
    """macOS writes names decomposed (NFD: e + U+0301), Linux and Windows as typed (NFC): a ``café.jpg`` copied
    from a Mac 'had no mask; expected café_mask.png' beside the very ``café_mask.png`` (or ``gt/café.png``)."""
    import unicodedata

    _write_pair(tmp_path, "cafe")
    (tmp_path / "im" / "cafe.jpg").rename(tmp_path / "im" / (unicodedata.normalize("NFD", "café") + ".jpg"))
    (tmp_path / "gt" / "cafe.png").rename(tmp_path / "gt" / (unicodedata.normalize("NFC", "café") + ".png"))
    if flat:
        _flatten(tmp_path)
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert [(unicodedata.normalize("NFC", p.image.stem), p.mask.name) for p in ds.pairs] == [
        ("café", unicodedata.normalize("NFC", "café_mask.png" if flat else "café.png"))]


@pytest.mark.parametrize("flat", [False, True])
def test_the_metadata_files_a_mac_leaves_beside_each_picture_are_not_pictures(tmp_path, flat):
    """A dataset copied from a Mac to a shared or FAT disk has ``._a.jpg`` beside ``a.jpg`` (and ``._a.png`` beside
    its mask): training refused to start, calling the first of them an unreadable image."""
    _write_pair(tmp_path, "a")
    for name in ("im/._a.jpg", "gt/._a.png", "im/.DS_Store"):
        (tmp_path / name).write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    if flat:
        _flatten(tmp_path)
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert [p.image.name for p in ds.pairs] == ["a.jpg"]


@pytest.mark.parametrize("how", ["zero_one", "palette", "rgba"])
def test_flat_layout_masks_are_read_as_the_other_layouts_read_them(tmp_path, how):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    _rewrite_masks(tmp_path, how)
    _flatten(tmp_path)
    ds = FolderDataset(tmp_path, 32, flip=False)
    for i in range(len(ds)):
        _, m = ds[i]
        assert float(m[0, :, :14].min()) > 0.9 and float(m[0, :, 18:].max()) < 0.1, (how, i)


def test_flat_layout_names_the_missing_and_the_doubled_mask(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    _flatten(tmp_path)
    (tmp_path / "b_mask.png").unlink()
    with pytest.raises(DataError, match=r"b\.jpg has no mask; expected .*b_mask\.png \(or b_matte\.png\)"):
        FolderDataset(tmp_path, 32)
    cv2.imwrite(str(tmp_path / "b_mask.png"), np.zeros((40, 50), np.uint8))
    cv2.imwrite(str(tmp_path / "b_matte.png"), np.zeros((40, 50), np.uint8))
    with pytest.raises(DataError, match=r"b_mask\.png and .*b_matte\.png are both masks of 'b'"):
        FolderDataset(tmp_path, 32)


def test_images_without_any_mask_say_so(tmp_path):
    _write_pair(tmp_path, "a")
    _flatten(tmp_path)
    (tmp_path / "a_mask.png").unlink()
    with pytest.raises(DataError, match="holds images but no masks"):
        FolderDataset(tmp_path, 32)


def test_split_holds_out_a_seeded_fraction_by_pair_unflipped(tmp_path):
    for stem in "abcdefghij":
        _write_pair(tmp_path, stem)
    ds = FolderDataset(tmp_path, 32)
    train, val = ds.split(0.3, seed=5)
    names = lambda d: [p.image.name for p in d.pairs]  # noqa: E731
    assert len(val.pairs) == 3 and len(train.pairs) == 7 and not set(names(train)) & set(names(val))
    assert sorted(names(train) + names(val)) == names(ds)
    assert len(train) == 14 and len(val) == 3  # training keeps its mirrored copies, validation scores pictures as they are
    assert names(ds.split(0.3, seed=5)[1]) == names(val)  # the same command holds out the same images
    assert any(names(ds.split(0.3, seed=s)[1]) != names(val) for s in range(6, 10))
    assert len(ds.split(0.01, seed=5)[1].pairs) == 1 and len(ds.split(0.99, seed=5)[0].pairs) == 1  # both sides keep one
    x, m = val[0]
    assert x.shape == (3, 32, 32) and float(m[0, :, :14].min()) > 0.9


def test_split_of_a_single_pair_is_refused(tmp_path):
    _write_pair(tmp_path, "a")
    with pytest.raises(DataError, match="holds 1 image/mask pair; holding some out for validation needs at least 2"):
        FolderDataset(tmp_path, 32).split(0.5)


@pytest.mark.parametrize("flat", [False, True])
def test_a_mask_named_in_another_case_pairs_with_its_image(tmp_path, flat):
    """``im/IMG_1.jpg`` beside ``gt/img_1.png`` (a camera's capitals, an annotation tool's lower case) 'had no
    mask', and the mask 'had no image', though a Mac or Windows disk opens the one by the other's name."""
    _write_pair(tmp_path, "IMG_1")
    _write_pair(tmp_path, "b")
    (tmp_path / "gt" / "IMG_1.png").rename(tmp_path / "gt" / "img_1.png")
    if flat:
        _flatten(tmp_path)
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert sorted((p.image.stem, p.mask.stem) for p in ds.pairs) == (
        [("IMG_1", "img_1_mask"), ("b", "b_mask")] if flat else [("IMG_1", "img_1"), ("b", "b")])


def test_of_two_images_differing_in_case_only_the_one_of_the_masks_name_gets_it(tmp_path):
    """``a.jpg`` and ``A.jpg`` are two pictures on Linux: ``gt/a.png`` is ``a.jpg``'s, and ``A.jpg`` has none."""
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "A")
    (tmp_path / "gt" / "A.png").unlink()
    with pytest.raises(DataError, match=r"A\.jpg has no mask"):
        FolderDataset(tmp_path, 32)


@pytest.mark.parametrize("names", [("im", "gt"), ("images", "masks")])
def test_pictures_in_category_subfolders_pair_by_their_path(tmp_path, names):
    """``im/shoes/a.jpg`` with ``gt/shoes/a.png``: a set in category folders was 'no images', and beside one picture
    at the top the run trained on that one alone, the others left out without a word."""
    for sub in ("shoes", "bags"):
        _write_pair(tmp_path / sub, "a")
        for inner, outer in zip(("im", "gt"), names):
            (tmp_path / outer).mkdir(exist_ok=True)
            (tmp_path / sub / inner).rename(tmp_path / outer / sub)
        (tmp_path / sub).rmdir()
    _write_pair(tmp_path / "top", "b")
    for inner, outer in zip(("im", "gt"), names):
        (tmp_path / "top" / inner / ("b.jpg" if inner == "im" else "b.png")).rename(tmp_path / outer / ("b.jpg" if inner == "im" else "b.png"))
    ds = FolderDataset(tmp_path, 32, flip=False)
    assert sorted(str(p.mask.relative_to(tmp_path)) for p in ds.pairs) == [
        f"{names[1]}/b.png", f"{names[1]}/bags/a.png", f"{names[1]}/shoes/a.png"]
    assert all(p.image.parent.name == p.mask.parent.name or p.image.stem == "b" for p in ds.pairs)
    (tmp_path / names[1] / "bags" / "a.png").unlink()
    with pytest.raises(DataError, match=rf"{names[0]}/bags/a\.jpg has no mask; expected .*{names[1]}/bags/a\.png"):
        FolderDataset(tmp_path, 32)


@pytest.mark.parametrize("given", ["im", "gt"])
def test_a_folder_inside_a_dataset_names_the_dataset(tmp_path, given):
    """``--data ds/im`` (the pictures' folder) said 'holds images but no masks' and listed every layout."""
    _write_pair(tmp_path / "ds", "a")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'ds' / given} is a folder of the dataset {tmp_path / 'ds'}; give the dataset's folder, {tmp_path / 'ds'}$"):
        FolderDataset(tmp_path / "ds" / given, 32)


def test_masks_in_subfolders_of_a_flat_dataset_are_named_in_a_warning(tmp_path, caplog):
    """The flat layout reads its own folder: pairs in its subfolders were left out of training without a word."""
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path / "shoes", "b")
    _flatten(tmp_path)
    _flatten(tmp_path / "shoes")
    with caplog.at_level("WARNING", logger="birefvid.data.folders"):
        ds = FolderDataset(tmp_path, 32, flip=False)
    assert [p.image.name for p in ds.pairs] == ["a.jpg"]
    assert f"1 mask(s) in subfolders of {tmp_path} are not read" in caplog.text and "b_mask.png" in caplog.text


def test_linked_category_folders_are_read_and_a_loop_is_not(tmp_path):
    """``im/shoes -> /data/shoes/im`` (a set assembled from links): its pictures were left out without a word, the run
    training on the pictures at the top alone; a link back up (``im/all -> im``) is not walked round and round, and a folder
    linked twice (``im/zlatest`` beside ``im/shoes``) is read once."""
    _write_pair(tmp_path / "ds", "a")
    _write_pair(tmp_path / "shoes", "b")
    _write_pair(tmp_path / "shoes", "c")
    for inner in ("im", "gt"):
        (tmp_path / "ds" / inner / "shoes").symlink_to(tmp_path / "shoes" / inner, target_is_directory=True)
        (tmp_path / "ds" / inner / "all").symlink_to(tmp_path / "ds" / inner, target_is_directory=True)
        (tmp_path / "ds" / inner / "zlatest").symlink_to(tmp_path / "shoes" / inner, target_is_directory=True)
    ds = FolderDataset(tmp_path / "ds", 32, flip=False)
    assert sorted(str(p.mask.relative_to(tmp_path / "ds")) for p in ds.pairs) == ["gt/a.png", "gt/shoes/b.png", "gt/shoes/c.png"]


def _write_masks(root: Path, masks: list[np.ndarray]) -> None:
    """Pairs a.png, b.png... of a grey picture and each of ``masks``."""
    (root / "im").mkdir(parents=True)
    (root / "gt").mkdir(parents=True)
    for i, mask in enumerate(masks):
        cv2.imwrite(str(root / "im" / f"{i:03d}.png"), np.full((*mask.shape, 3), 128, np.uint8))
        cv2.imwrite(str(root / "gt" / f"{i:03d}.png"), mask)


def _subject(h: int = 48, w: int = 40, *, inverted: bool = False, touching_the_bottom: bool = False) -> np.ndarray:
    """A white subject on black: a disc, or a portrait's head and shoulders down to the bottom edge."""
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 2, h // 2), min(h, w) // 3, 255, -1)
    if touching_the_bottom:
        mask[h * 2 // 3 :, w // 6 : w * 5 // 6] = 255
    return 255 - mask if inverted else mask


def test_inverted_masks_are_named_in_a_warning(tmp_path, caplog):
    """Masks with white marking the background trained a model that cuts out the background, without a word."""
    _write_masks(tmp_path, [_subject(inverted=True, touching_the_bottom=i % 2 == 0) for i in range(5)] + [_subject()])
    with caplog.at_level("WARNING", logger="birefvid.data.folders"):
        FolderDataset(tmp_path, 32)
    assert f"{tmp_path}: 5 of 6 masks sampled look inverted" in caplog.text and "mogrify -negate" in caplog.text


def test_empty_masks_are_named_in_a_warning(tmp_path, caplog):
    _write_masks(tmp_path, [np.zeros((48, 40), np.uint8)] * 3 + [_subject()])
    with caplog.at_level("WARNING", logger="birefvid.data.folders"):
        FolderDataset(tmp_path, 32)
    assert f"{tmp_path}: 3 of 4 masks sampled are empty" in caplog.text and "inverted" not in caplog.text


def test_ordinary_masks_give_no_warning(tmp_path, caplog):
    """Subjects that touch the bottom edge (portraits), fill most of the picture or are 0/1 masks are not taken for
    inverted ones; one empty mask among several (a negative example) is not a habit."""
    big = np.zeros((48, 40), np.uint8)
    big[4:, 3:-3] = 255  # a close-up: most of the picture, but not its top and sides
    ones = (_subject() // 255).astype(np.uint8)
    _write_masks(tmp_path, [_subject(touching_the_bottom=True), _subject(), big, ones, np.zeros((48, 40), np.uint8)])
    with caplog.at_level("WARNING", logger="birefvid.data.folders"):
        FolderDataset(tmp_path, 32)
    assert "masks sampled" not in caplog.text


def test_subjects_filling_the_frame_give_no_warning(tmp_path, caplog):
    """A close-up face whose hair reaches the top and an object cropped to its box cover as much of the border
    and area as an inverted mask does (80% and 96%), but leave the background in the corners: a set of them was
    told its masks look inverted, and a user following the warning would have inverted good masks."""
    face = np.zeros((96, 72), np.uint8)
    cv2.ellipse(face, (36, 43), (40, 53), 0, 0, 360, 255, -1)
    face[48:] = 255  # neck and shoulders to the bottom edge
    box = np.full((54, 96), 255, np.uint8)
    for x, y in [(0, 0), (95, 0), (0, 53), (95, 53)]:
        cv2.circle(box, (x, y), 8, 0, -1)  # a screen's rounded corners, cropped to its box
    _write_masks(tmp_path / "faces", [face] * 4)
    _write_masks(tmp_path / "boxes", [box] * 4)
    with caplog.at_level("WARNING", logger="birefvid.data.folders"):
        FolderDataset(tmp_path / "faces", 32)
        FolderDataset(tmp_path / "boxes", 32)
    assert "masks sampled" not in caplog.text


@pytest.mark.parametrize("mask_name", ["mask_{}", "{}_mask", "{}-gt", "{}_segmentation"])
def test_masks_named_with_a_prefix_or_suffix_are_named_so_with_the_rename(tmp_path, mask_name):
    """A set whose masks are their images' names plus a word (``gt/mask_a.png`` for ``im/a.jpg``, as many exporters
    name them) was refused as every image lacking a mask, with nothing to say the masks were there under other names."""
    for stem in "abc":
        _write_pair(tmp_path, stem)
        (tmp_path / "gt" / f"{stem}.png").rename(tmp_path / "gt" / f"{mask_name.format(stem)}.png")
    with pytest.raises(DataError) as err:
        FolderDataset(tmp_path, 32)
    message = str(err.value)
    gt = tmp_path / "gt"
    assert "\n" not in message and message.startswith(f"3 of the 3 images in {tmp_path / 'im'} cannot be used: ")
    added = mask_name.format("")
    assert message.endswith(f"; the masks in {gt} are named as their images with {added!r} added "
                            f"({mask_name.format('a')}.png for a.jpg): rename them to their images' names")


def test_masks_of_unrelated_names_get_no_rename_advice(tmp_path):
    """Masks left over that are not the maskless images' names with a word added: no advice to rename them."""
    for stem in "abcdef":
        _write_pair(tmp_path, stem)
    for stem in "ab":
        (tmp_path / "gt" / f"{stem}.png").unlink()
    cv2.imwrite(str(tmp_path / "gt" / "other.png"), np.zeros((40, 50), np.uint8))
    with pytest.raises(DataError) as err:
        FolderDataset(tmp_path, 32)
    assert str(err.value).endswith(f"b.jpg has no mask; expected {tmp_path / 'gt' / 'b.png'}")


def test_rename_advice_in_category_subfolders(tmp_path):
    """im/shoes/a.jpg with gt/shoes/a_gt.png: the word is found beside the name, in the subfolder."""
    for stem in "ab":
        _write_pair(tmp_path, stem)
    for folder in ("im", "gt"):
        (tmp_path / folder / "shoes").mkdir()
    for stem in "ab":
        (tmp_path / "im" / f"{stem}.jpg").rename(tmp_path / "im" / "shoes" / f"{stem}.jpg")
        (tmp_path / "gt" / f"{stem}.png").rename(tmp_path / "gt" / "shoes" / f"{stem}_gt.png")
    with pytest.raises(DataError, match=r"with '_gt' added \(a_gt\.png for a\.jpg\): rename them"):
        FolderDataset(tmp_path, 32)


@pytest.mark.parametrize(("images", "masks", "advice"), [
    # "a" is in "mask_a" twice: the word is the "mask_" before it, not "m" and "sk_a" around it
    (["a"], ["mask_a"], "with 'mask_' added (mask_a.png for a.jpg)"),
    # "a" is in "cat_mask" too: cat's word, not a's "c...t_mask", which would rename cat's mask as a's
    (["a", "cat"], ["cat_mask"], "with '_mask' added (cat_mask.png for cat.jpg)"),
    # exported from a camera in upper case, the masks named in lower case: as a mask of another case alone pairs
    (["A", "B"], ["mask_a", "mask_b"], "with 'mask_' added (mask_a.png for A.jpg)"),
])
def test_rename_advice_names_the_word_and_the_image_it_belongs_to(tmp_path, images, masks, advice):
    """The advice is followed to the letter: the word it names is removed from the mask it names, which then must
    be that image's. A stem found inside another name, or in another case, gave a wrong word or pair, or none."""
    for stem in images:
        _write_pair(tmp_path, stem)
        (tmp_path / "gt" / f"{stem}.png").unlink()
    for name in masks:
        cv2.imwrite(str(tmp_path / "gt" / f"{name}.png"), np.zeros((40, 50), np.uint8))
    with pytest.raises(DataError) as err:
        FolderDataset(tmp_path, 32)
    assert str(err.value).endswith(f"; the masks in {tmp_path / 'gt'} are named as their images {advice}: "
                                   "rename them to their images' names"), str(err.value)


@pytest.mark.parametrize("image_folder, mask_folder", [("shoes", ""), ("", "shoes"), ("shoes", "boots")])
def test_images_and_masks_in_different_subfolders_are_named_as_a_layout_mismatch(tmp_path, image_folder, mask_folder):
    """Images in category subfolders with every mask flat in gt/ (``im/shoes/a.jpg`` with ``gt/a.png``), or the
    reverse, as some DIS5K copies are laid out: the set was refused as every image lacking a mask, the masks there
    all along; the error now says where they are and that the two folders must be laid out alike."""
    for stem in "abc":
        _write_pair(tmp_path, stem)
    for top, sub in (("im", image_folder), ("gt", mask_folder)):
        (tmp_path / top / sub).mkdir(exist_ok=True)
        for f in list((tmp_path / top).glob("*.*")):
            f.rename(tmp_path / top / sub / f.name)
    with pytest.raises(DataError) as err:
        FolderDataset(tmp_path, 32)
    message = str(err.value)
    im, gt = tmp_path / "im", tmp_path / "gt"
    where = {("shoes", ""): f"sit directly in {gt} while their images are in subfolders of {im}",
             ("", "shoes"): f"are in subfolders of {gt} while their images sit directly in {im}",
             ("shoes", "boots"): f"are in other subfolders of {gt} than their images in {im}"}[(image_folder, mask_folder)]  # fmt: skip
    example = f"gt/{mask_folder + '/' if mask_folder else ''}a.png for im/{image_folder + '/' if image_folder else ''}a.jpg"
    assert "\n" not in message and message.startswith(f"3 of the 3 images in {im} cannot be used: ")
    assert message.endswith(f"; the masks {where} ({example}): each mask is read from the subfolder of gt "
                            "named as its image's in im, so lay both folders out alike"), message


def test_refusing_a_large_set_whose_masks_lie_elsewhere_grows_with_its_size_not_its_square(tmp_path):
    """10,000 images in im/CATEGORY/ with their masks flat in gt/ (every image maskless): each image's search for a
    mask in another case scanned every image's and every mask's name, so the refusal took 15 s at 10,000 images and
    would take 25 minutes at 100,000. The work is counted, not timed: the calls made (Python's and builtins', such as
    each name's casefold) for a set 8 times larger, 8-9 times as many, where the scan made them 60-odd times as many.
    Timed side by side (the best of three), a loaded machine's pauses moved the ratio (10 idle, 25 the bound), and the
    test took 20 s under load."""
    import sys

    from birefvid.data.folders import scan_pairs

    def layout(n: int) -> Path:
        root = tmp_path / str(n)
        (root / "im" / "cat").mkdir(parents=True)
        (root / "gt").mkdir()
        for i in range(n):  # empty files: no pair is made, so none is read
            (root / "im" / "cat" / f"img_{i:05d}.jpg").touch()
            (root / "gt" / f"img_{i:05d}.png").touch()
        return root

    def calls(root: Path) -> int:
        made = [0]

        def count(frame, event, arg) -> None:
            if event in ("call", "c_call"):
                made[0] += 1

        sys.setprofile(count)
        try:
            with pytest.raises(DataError, match="lay both folders out alike"):
                scan_pairs(root)
        finally:
            sys.setprofile(None)
        return made[0]

    small, large = layout(250), layout(2000)
    ratio = calls(large) / calls(small)
    assert ratio < 20, f"8 times the images took {ratio:.1f} times as many calls"

"""Image/mask folders in the DIS5K / DUTS layout as a training dataset.

Layout: ``root/im/<stem>.<any image extension>`` and ``root/gt/<stem>.png`` (or .jpg, any picture; subfolders too, paired by path), DUTS-TR's
``root/DUTS-TR-Image/`` and ``root/DUTS-TR-Mask/`` (any ``NAME-Image/`` + ``NAME-Mask/``), ``root/images/`` +
``root/masks/`` (or ``img/`` + ``mask/``, any case), or the flat
layout many datasets ship: ``root/<stem>.jpg`` beside ``root/<stem>_mask.png`` (or ``_matte.png``). Every
pair is checked when the dataset is made (a cheap header read), so a bad file fails at start-up
with its name, not hours into training.

Masks are read as ``birefvid eval`` reads ground truth (``eval.readers.image_mask_rule``): grey
levels, the alpha of RGBA cut-outs, the foreground of palette annotations (VOC/DAVIS colours), and a
set of 0/1 masks as 0/255 (read as 1/255 they would teach the model that everything is background), and a float matte (32-bit TIFF,
OpenEXR) as the soft alpha in [0, 1] it holds.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from birefvid.data._tensors import parse_size, to_sample
from birefvid.data.mask_check import mask_warnings
from birefvid.errors import DataError, SourceError
from birefvid.eval.readers import image_mask_rule, is_soft, read_mask
from birefvid.io.image_source import name_key, read_rgb
from birefvid.extensions import IMAGE_EXTENSIONS, MASK_EXTENSIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    """One training pair on disk, with the size both files share."""

    image: Path
    mask: Path
    height: int
    width: int


_TRANSPOSING = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the picture a quarter: width and height swap


def _image_size(path: Path, upright: bool = False) -> tuple[int, int]:
    """(h, w) of an image file from its header; DataError naming the file if it is not an image.

    ``upright``: the size once turned by its EXIF orientation, as the image is decoded for training and
    by ``birefvid image`` (a phone photo stored sideways; its mask was drawn on the picture as shown).
    """
    if path.suffix.lower() == ".exr":  # an OpenEXR mask: Pillow has no EXR reader, so it is decoded
        return _decoded_size(path)
    try:
        from PIL import Image  # pillow ships with torchvision; only the header is read
    except ImportError:  # pragma: no cover - fall back to a full decode
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DataError(f"cannot read {path}: not a readable image; replace or remove the file") from None
        return int(img.shape[0]), int(img.shape[1])
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.format == "PNG":
                im.verify()  # checks chunk CRCs without decoding pixels
        if upright:  # a second open: verify() must come first and leaves the image unusable
            with Image.open(path) as im:
                if im.getexif().get(0x0112) in _TRANSPOSING:  # 0x0112: Orientation
                    # a TIFF's size is upright already in recent Pillow: turn its stored width x height
                    w, h = (im.tag_v2[257], im.tag_v2[256]) if im.format == "TIFF" else (h, w)
    except Exception as exc:  # PIL raises many types for bad bytes
        raise DataError(f"cannot read {path}: not a readable image ({exc}); replace or remove the file") from exc
    return int(h), int(w)


def _decoded_size(path: Path) -> tuple[int, int]:
    """(h, w) of a mask decoded as training reads it; DataError naming the file if it is not readable."""
    try:
        return read_mask(path).shape[:2]
    except SourceError as exc:
        raise DataError(f"{exc}; replace or remove the file") from exc


LAYOUTS = ("root/im/*.jpg + root/gt/*.png (DIS5K), root/NAME-Image/*.jpg + root/NAME-Mask/*.png (DUTS-TR), "
           "root/images/*.jpg + root/masks/*.png (or img/ + mask/), or root/x.jpg beside root/x_mask.png or x_matte.png (flat)")
FOLDER_PAIRS = (("images", "masks"), ("img", "mask"))  # common (image folder, mask folder) names, any case
FLAT_MASK_ENDINGS = ("_mask", "_matte")  # the flat layout's mask of x.jpg: x_mask.png or x_matte.png


def _flat_mask_key(path: Path) -> "str | None":
    """The image stem a flat-layout mask file belongs to (``x`` for ``x_mask.png``, or ``x_mask.jpg``), or None if
    it is no such mask."""
    if path.suffix.lower() not in MASK_EXTENSIONS:
        return None
    for ending in FLAT_MASK_ENDINGS:
        if path.stem.lower().endswith(ending) and len(path.stem) > len(ending):
            return name_key(path.stem[: -len(ending)])
    return None


def _visible_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The files in ``folder`` (and its subfolders if ``recursive``) but hidden ones: the ``._a.jpg`` metadata macOS
    writes beside ``a.jpg`` on a shared or FAT disk is no picture, and was refused as an unreadable image.
    Linked subfolders are followed (a set assembled from links), each real folder once: a link back up is no loop."""
    if not recursive:
        return [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file()]
    found = []
    walked = {os.path.realpath(folder)}
    for top, dirs, names in os.walk(folder, followlinks=True):
        kept = []  # .ipynb_checkpoints, .git left out; sorted, so the image and mask trees take a folder linked twice by one name
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(top, d))
            if not d.startswith(".") and real not in walked:
                walked.add(real)
                kept.append(d)
        dirs[:] = kept
        found += [Path(top) / n for n in names if not n.startswith(".")]
    return found


def _key(path: Path, folder: Path) -> str:
    """The name a picture and its mask share: the path under their folder without the extension (``shoes/a``
    for ``im/shoes/a.jpg`` and ``gt/shoes/a.png``), as ``name_key`` matches names."""
    return name_key("/".join((*path.relative_to(folder).parent.parts, path.stem)))


def find_layout(root: Path) -> tuple[Path, Path]:
    """(image folder, mask folder) of a dataset root: ``im/`` + ``gt/`` (DIS5K's, and this project's), its
    one ``NAME-Image/`` + ``NAME-Mask/`` pair (DUTS-TR as downloaded: DUTS-TR-Image/ + DUTS-TR-Mask/),
    ``images/`` + ``masks/`` or ``img/`` + ``mask/`` (any case; many datasets ship so), or ``root`` twice for
    the flat layout (``x.jpg`` beside ``x_mask.png``/``x_matte.png``). DataError naming what is missing, and
    the datasets inside when ``root`` is a level too high (DIS5K/)."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected {LAYOUTS}")
    im_dir, gt_dir = root / "im", root / "gt"
    if im_dir.is_dir() or gt_dir.is_dir():
        for d in (im_dir, gt_dir):
            if not d.is_dir():
                raise DataError(f"{d} is not a folder; expected {LAYOUTS}")
        return im_dir, gt_dir
    folders = {d.name.lower(): d for d in root.iterdir() if d.is_dir()}
    for images, masks in FOLDER_PAIRS:
        if images in folders and masks in folders:
            return folders[images], folders[masks]
    duts = [(d, folders[name[: -len("-image")] + "-mask"]) for name, d in sorted(folders.items())
            if name.endswith("-image") and name[: -len("-image")] + "-mask" in folders]  # fmt: skip
    if len(duts) == 1:
        return duts[0]
    if duts:
        names = ", ".join(d.name for d, _ in duts)
        raise DataError(f"{root} holds {len(duts)} NAME-Image/ + NAME-Mask/ pairs ({names}); move each pair to a folder of its own")
    files = [p for p in _visible_files(root) if p.suffix.lower() in MASK_EXTENSIONS]
    if any(_flat_mask_key(p) is not None for p in files):
        return root, root
    if files:  # pictures and nothing marked as a mask: say that, not "im is not a folder"
        if root.resolve() in _layout_folders(root.resolve().parent):  # --data ds/im: the folder inside the dataset
            parent = root.parent if root.name not in ("", ".", "..") else root.resolve().parent  # --data . inside im/
            raise DataError(f"{root} is a folder of the dataset {parent}; give the dataset's folder, {parent}")
        raise DataError(f"{root} holds images but no masks (x_mask.png or x_matte.png beside each x.jpg); expected {LAYOUTS}")
    inner = sorted(d.name for d in folders.values() if (d / "im").is_dir() and (d / "gt").is_dir())
    hint = f"; its subfolders {', '.join(inner)} are datasets: train on one of them" if inner else ""
    raise DataError(f"{im_dir} is not a folder; expected {LAYOUTS}{hint}")


def _layout_folders(root: Path) -> tuple[Path, ...]:
    """The image and mask folders of the dataset at ``root``; none when it is no dataset."""
    try:
        return find_layout(root)
    except (DataError, OSError):
        return ()


def scan_pairs(root: Union[str, Path]) -> list[Pair]:
    """List and validate the (image, mask) pairs under ``root``; raise DataError on any problem."""
    root = Path(root)
    im_dir, gt_dir = find_layout(root)
    flat = im_dir == gt_dir
    # category subfolders (im/shoes/a.jpg with gt/shoes/a.png) were left out without a word; the flat layout's
    # folder is read alone: its subfolders may hold anything (the originals, a run's outputs)
    files = sorted(p for p in _visible_files(im_dir, recursive=not flat) if p.suffix.lower() in MASK_EXTENSIONS)
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS and not (flat and _flat_mask_key(p) is not None)]
    if not images:
        raise DataError(f"no images in {im_dir}; expected images ({', '.join(sorted(IMAGE_EXTENSIONS))}) with masks of their names (.png) in {gt_dir}")
    masks = _flat_masks(files) if flat else _folder_masks(gt_dir)

    def expected(image: Path) -> str:
        stem = image.stem
        if flat:
            return f"{gt_dir / (stem + FLAT_MASK_ENDINGS[0] + '.png')} (or {stem}{FLAT_MASK_ENDINGS[1]}.png)"
        return str(gt_dir / image.relative_to(im_dir).parent / (stem + ".png"))

    pairs: list[Pair] = []
    problems: list[str] = []  # every unusable image, named at once: not one more start of training per fix
    maskless: list[tuple[Path, str]] = []  # (image, key) of the images without a mask
    paired: dict[str, Path] = {}  # stem -> its image: a.jpg beside a.png would both claim gt/a.png
    keys = [_key(image, im_dir) for image in images]
    other_case = _OtherCase(keys, masks)
    for image, key in zip(images, keys):
        if key in paired:
            problems.append(f"{paired[key]} and {image} share the name {image.stem!r} and so one mask, "
                            f"{expected(image)}; keep one of them, or rename the other and its mask")
            continue
        paired[key] = image
        mask = masks.pop(key, None) or other_case.take(key, masks)
        if mask is None:
            problems.append(f"{image} has no mask; expected {expected(image)}")
            maskless.append((image, key))
            continue
        try:
            pairs.append(_pair(image, mask))
        except DataError as exc:
            problems.append(str(exc))
    if masks:
        log.warning("%d mask(s) in %s have no image and are ignored, e.g. %s", len(masks), gt_dir, next(iter(masks.values())))
    if flat:
        _warn_flat_subfolders(im_dir)
    renamed = "" if flat else (_renamed_masks_hint(maskless, masks, gt_dir) or _subfolder_mismatch_hint(maskless, masks, im_dir, gt_dir))
    if len(problems) == 1:
        raise DataError(problems[0] + renamed)
    if problems:
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise DataError(f"{len(problems)} of the {len(images)} images in {im_dir} cannot be used: "
                        f"{'; '.join(problems[:SHOWN_PROBLEMS])}{more}{renamed}")
    return pairs


def _with_affix(key: str, prefix: str, suffix: str) -> str:
    """``key`` (``shoes/a``) with ``prefix`` and ``suffix`` around its last part (``shoes/mask_a``)."""
    folder, slash, stem = key.rpartition("/")
    return f"{folder}{slash}{prefix}{stem}{suffix}"


AFFIX_SAMPLES = 5  # images without a mask whose names are looked for inside the unclaimed masks' names


def _renamed_masks_hint(maskless: list[tuple[Path, str]], masks: dict[str, Path], gt_dir: Path) -> str:
    """Advice when the masks left unclaimed are the maskless images' names with one prefix and/or suffix added
    (``gt/mask_a.png`` or ``gt/a_mask.png`` for ``im/a.jpg``, as many annotation tools name them, in any case) for at
    least half of those images: the set was refused as every image lacking a mask, the masks there under other names.
    Else "".

    The affix is guessed from the first few maskless images (a scan of the masks each) and then checked by lookup,
    so a set of 10,000 costs no 10,000 x 10,000 comparisons."""
    if not maskless or not masks:
        return ""
    by_folder: dict[str, list[str]] = {}
    for key in masks:
        folder, _, name = key.rpartition("/")
        by_folder.setdefault(folder, []).append(name)
    folded = {key.casefold(): path for key, path in masks.items()}  # IMG_1.JPG's mask may be mask_img_1.png
    guesses = [guess for _, key in maskless[:AFFIX_SAMPLES] if (guess := _affix_guess(key, by_folder)) is not None]
    best: tuple[tuple[int, bool, int], str, str, Path, Path] | None = None
    for prefix, suffix in dict.fromkeys(guesses):
        named = [(image, found) for image, key in maskless
                 if (found := folded.get(_with_affix(key, prefix, suffix).casefold())) is not None]  # fmt: skip
        # most images named so; on a tie a word on one side only, then the shorter: "a" in "cat_mask" is no rename
        rank = (len(named), not (prefix and suffix), -len(prefix + suffix))
        if named and (best is None or rank > best[0]):
            best = (rank, prefix, suffix, named[0][0], named[0][1])
    if best is None or 2 * best[0][0] < len(maskless):
        return ""
    _, prefix, suffix, image, mask = best
    added = f"{prefix}...{suffix}" if prefix and suffix else prefix or suffix
    return (f"; the masks in {gt_dir} are named as their images with {added!r} added ({mask.name} for {image.name}): "
            "rename them to their images' names")


def _subfolder_mismatch_hint(maskless: list[tuple[Path, str]], masks: dict[str, Path], im_dir: Path, gt_dir: Path) -> str:
    """Advice when at least half the maskless images have a mask of their name in another subfolder of the mask
    folder, as some copies of DIS5K are laid out (``im/cat/a.jpg`` with a flat ``gt/a.png``, or the reverse); else "".

    Such a set is refused, not paired by name across folders: two categories may each hold an ``a.jpg``, and a
    pairing that guessed would train on the wrong masks without a word."""
    by_name: dict[str, list[str]] = {}
    for key in masks:
        by_name.setdefault(key.rpartition("/")[2], []).append(key)
    found = [(image, masks[keys[0]]) for image, key in maskless
             if len(keys := by_name.get(key.rpartition("/")[2], [])) == 1 and keys[0] != key]  # fmt: skip
    if not found or 2 * len(found) < len(maskless):
        return ""
    image, mask = found[0]
    image_rel, mask_rel = image.relative_to(im_dir), mask.relative_to(gt_dir)
    example = f"{gt_dir.name}/{mask_rel.as_posix()} for {im_dir.name}/{image_rel.as_posix()}"
    if len(mask_rel.parts) == 1:
        where = f"sit directly in {gt_dir} while their images are in subfolders of {im_dir}"
    elif len(image_rel.parts) == 1:
        where = f"are in subfolders of {gt_dir} while their images sit directly in {im_dir}"
    else:
        where = f"are in other subfolders of {gt_dir} than their images in {im_dir}"
    return (f"; the masks {where} ({example}): each mask is read from the subfolder of {gt_dir.name} "
            f"named as its image's in {im_dir.name}, so lay both folders out alike")


def _affix_guess(key: str, by_folder: dict[str, list[str]]) -> tuple[str, str] | None:
    """The (prefix, suffix) that makes image ``key``'s name into the name of a mask in its folder, if any: of every
    place the name is found in every mask's name (case aside), a word on one side only first, then the shortest
    ("a" is in "mask_a" twice: "mask_" before it, not "m" and "sk_a" around it)."""
    folder, _, stem = key.rpartition("/")
    wanted = stem.casefold()
    found = []
    for name in by_folder.get(folder, ()):
        low = name.casefold()
        if len(low) != len(name) or low == wanted:  # a case fold that changes the length: no place to cut at
            continue
        at = low.find(wanted)
        while at >= 0:
            prefix, suffix = name[:at], name[at + len(stem):]
            found.append((bool(prefix and suffix), len(prefix) + len(suffix), prefix, suffix))
            at = low.find(wanted, at + 1)
    return min(found)[2:] if found else None


LOSSLESS = frozenset({".png", ".bmp", ".tif", ".tiff", ".exr"})  # mask formats whose grey levels are as saved
SHOWN_PROBLEMS = 3  # unusable images named in the one error line; the rest are counted


def _pair(image: Path, mask: Path) -> Pair:
    """The pair of ``image`` and its ``mask`` once both headers are read; DataError when either is unreadable or
    their sizes differ (saying so when the mask was drawn on a phone photo as stored, sideways)."""
    ih, iw = _image_size(image, upright=True)
    mh, mw = _image_size(mask)
    if (ih, iw) != (mh, mw):
        sideways = (mh, mw) == (iw, ih) and _image_size(image) == (mh, mw)
        hint = (f" (the image is {mw}x{mh} as stored, shown and trained upright by its EXIF orientation: "
                "draw the mask on the upright picture, or turn it)") if sideways else ""  # fmt: skip
        raise DataError(f"{mask} is {mw}x{mh} but its image {image} is {iw}x{ih}{hint}; masks must match their image's size")
    return Pair(image, mask, ih, iw)


def _warn_flat_subfolders(root: Path) -> None:
    """Warn when subfolders of a flat dataset hold masks: the flat layout reads its own folder alone, and a set in
    category folders beside a few pictures at the top trained on those few without a word."""
    left = [p for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")
            for p in sorted(_visible_files(d)) if _flat_mask_key(p) is not None]  # fmt: skip
    if left:
        log.warning("%d mask(s) in subfolders of %s are not read (the flat layout reads its own folder alone), e.g. %s; "
                    "move them beside the others, or give --data the subfolder", len(left), root, left[0])


class _OtherCase:
    """Finds a mask whose name differs from an image's in case alone (``IMG_1.JPG`` with ``img_1.png``, as a Mac or
    Windows disk opens it) by lookup: a scan of every image's and mask's name for each maskless image made a set
    whose masks all lay elsewhere (a flat gt/ for im/CATEGORY/) take 15 s to refuse at 10,000 images, 25 min at 100,000."""

    def __init__(self, keys: list[str], masks: dict[str, Path]) -> None:
        self.images = Counter(k.casefold() for k in keys)
        self.masks: dict[str, list[str]] = {}
        for k in masks:
            self.masks.setdefault(k.casefold(), []).append(k)

    def take(self, key: str, masks: dict[str, Path]) -> "Path | None":
        """The one mask (taken out of ``masks``) of image ``key``'s name in another case, when no other image could
        claim it; else None."""
        folded = key.casefold()
        if self.images[folded] != 1:  # a.jpg and A.jpg: only their own masks pair with them
            return None
        found = [k for k in self.masks.get(folded, ()) if k in masks]  # those not yet claimed
        return masks.pop(found[0]) if len(found) == 1 else None


def _folder_masks(gt_dir: Path) -> dict[str, Path]:
    """Image stem -> its mask in a mask folder: a PNG, or another picture (JPEG masks, with their compression noise
    read as faint grey, are common: refused, they were called missing beside the mask); DataError for two of a name."""
    masks: dict[str, Path] = {}
    for p in sorted(_visible_files(gt_dir, recursive=True)):
        if p.suffix.lower() not in MASK_EXTENSIONS:
            continue
        key = _key(p, gt_dir)
        if key in masks:
            pngs = [m for m in (masks[key], p) if m.suffix.lower() == ".png"]
            if len(pngs) != 1:  # a.png beside a.jpg (a preview, say) stays the mask it always was
                raise DataError(f"{masks[key]} and {p} are both masks of {p.stem!r}; keep one of them")
            p = pngs[0]
        masks[key] = p
    return masks


def _flat_masks(files: list[Path]) -> dict[str, Path]:
    """Image stem -> its mask among a flat folder's ``files``; DataError when one image has two (x_mask and x_matte)."""
    masks: dict[str, Path] = {}
    for p in files:
        key = _flat_mask_key(p)
        if key is None:
            continue
        if key in masks:
            raise DataError(f"{masks[key]} and {p} are both masks of {key!r}; keep one of them")
        masks[key] = p
    return masks


def _read_rgb(path: Path) -> np.ndarray:
    """The image as ``birefvid image`` reads it (upright by EXIF, grey expanded, alpha dropped, 16 bits
    scaled): a model learns from the pictures it will be shown. DataError naming the file if it is corrupt."""
    try:
        return read_rgb(path)
    except SourceError as exc:
        raise DataError(f"cannot decode {path}; the file is corrupt or truncated: replace or remove it") from exc


class FolderDataset(Dataset):
    """DIS5K/DUTS-style (or flat) image/mask pairs, resized to ``size``, as (image (3, H, W), mask (1, H, W)).

    With ``flip`` the dataset is twice as long: item ``i + len(pairs)`` is item ``i`` mirrored,
    so augmentation stays a pure function of the index (reproducible and resumable).
    """

    def __init__(self, root: Union[str, Path], size: "int | tuple[int, int]" = 1024, *, flip: bool = True) -> None:
        self.root = Path(root)
        self.size = parse_size(size)
        self.flip = flip
        self.pairs = scan_pairs(self.root)
        try:
            self._by_alpha, self._zero_one = image_mask_rule(tuple(p.mask for p in self.pairs))
        except SourceError as exc:
            raise DataError(f"{exc}; replace or remove the file") from exc
        if self._zero_one:
            log.info("%s: the masks hold only 0 and 1; reading them as 0/255", self.root)
        log.info("%s: %d image/mask pairs", self.root, len(self.pairs))
        for warning in mask_warnings(self.root, [p.mask for p in self.pairs], self._by_alpha, self._zero_one):
            log.warning("%s", warning)

    def __len__(self) -> int:
        return len(self.pairs) * (2 if self.flip else 1)

    def split(self, fraction: float, seed: int = 0) -> "tuple[FolderDataset, FolderDataset]":
        """(training set, held-out validation set): a seeded ``fraction`` of the pairs, at least one, held out.

        The split is by pair, so no picture is on both sides as its mirror image; the held-out part is never
        flipped (validation scores the pictures as they are); both keep the whole set's mask reading rule,
        so a subset without a transparent cut-out still reads its masks by alpha."""
        n = len(self.pairs)
        if not 0 < fraction < 1:
            raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction}")
        if n < 2:
            raise DataError(f"{self.root} holds {n} image/mask pair; holding some out for validation needs at least 2")
        held = min(n - 1, max(1, round(n * fraction)))
        order = np.random.default_rng([seed, 0x5E1D]).permutation(n)  # own stream: not the training order's
        val_idx = set(int(i) for i in order[:held])
        train, val = copy.copy(self), copy.copy(self)
        train.pairs = [p for i, p in enumerate(self.pairs) if i not in val_idx]
        val.pairs, val.flip = [p for i, p in enumerate(self.pairs) if i in val_idx], False
        return train, val

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"FolderDataset index {index} out of range [0, {len(self)})")
        pair = self.pairs[index % len(self.pairs)]
        image = _read_rgb(pair.image)
        try:
            mask = read_mask(pair.mask, self._by_alpha, self._zero_one)
        except SourceError as exc:
            raise DataError(f"cannot decode {pair.mask}; the file is corrupt or truncated: replace or remove it") from exc
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(f"{pair.mask} does not match the size of {pair.image}; masks must match their image")
        # a 0/1 mask among 0/255 ones (datasets merged): read as 1/255 it taught "all background"; not a JPEG's,
        # whose 1s in an empty mask are compression noise
        if not is_soft(mask) and mask.max() == 1 and pair.mask.suffix.lower() in LOSSLESS:
            mask = np.where(mask > 0, np.iinfo(mask.dtype).max, 0).astype(mask.dtype)
        h, w = self.size
        if (h, w) != image.shape[:2]:
            shrink = h * w < image.shape[0] * image.shape[1]
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            image = cv2.resize(image, (w, h), interpolation=interp)
            mask = cv2.resize(mask, (w, h), interpolation=interp)
        return to_sample(image, _unit_alpha(mask), flip=index >= len(self.pairs))


def _unit_alpha(mask: np.ndarray) -> np.ndarray:
    """A mask as float32 alpha in [0, 1]: 8- or 16-bit levels scaled, a float matte as it is (soft labels kept)."""
    if is_soft(mask):
        return mask.astype(np.float32, copy=False)
    return mask.astype(np.float32) * np.float32(1 / np.iinfo(mask.dtype).max)

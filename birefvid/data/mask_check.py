"""A look at a sample of a training set's masks for two mistakes that train a useless model without an error:
masks inverted (white marks the background) and masks left empty (all background)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from birefvid.errors import SourceError
from birefvid.eval.readers import is_soft, read_mask

SAMPLED = 24  # masks read at start-up: enough to see a habit of the whole set, a fraction of a second's decoding
INVERTED_EDGE = 0.75  # a mask whose subject covers three quarters of the picture's border...
INVERTED_COVER = 0.5  # ...and half its area most likely marks the background...
CORNER = 0.05  # ...when it also fills the picture's four corners (patches this fraction of its height and width):
# a subject filling the frame (a close-up face, an object cropped to its box) covers as much border and area, but
# leaves the background in a corner or two


def _foreground(mask: np.ndarray) -> np.ndarray:
    """Where a mask marks the subject: over half its range (a 0/1 mask's 1s too, as the dataset reads them; a float
    matte's alpha over 0.5)."""
    if is_soft(mask):
        return mask > 0.5
    if int(mask.max()) == 1:
        return mask > 0
    return mask > np.iinfo(mask.dtype).max // 2


def _border(fg: np.ndarray) -> np.ndarray:
    """The picture's outermost ring of pixels."""
    return np.concatenate([fg[0], fg[-1], fg[1:-1, 0], fg[1:-1, -1]])


def _corners_filled(fg: np.ndarray) -> bool:
    """True when the subject covers most of each of the picture's four corner patches."""
    h, w = fg.shape
    ch, cw = max(1, round(h * CORNER)), max(1, round(w * CORNER))
    return all(patch.mean() > 0.5 for patch in (fg[:ch, :cw], fg[:ch, -cw:], fg[-ch:, :cw], fg[-ch:, -cw:]))


def _looks_inverted(fg: np.ndarray) -> bool:
    """White over half the picture, three quarters of its border and all four corners: the background marked."""
    return fg.mean() >= INVERTED_COVER and _border(fg).mean() >= INVERTED_EDGE and _corners_filled(fg)


def mask_warnings(root: Path, masks: Sequence[Path], by_alpha: bool, zero_one: bool) -> list[str]:
    """Warnings for ``masks`` (a training set's, read by the set's rule), from up to SAMPLED of them spread
    evenly: most of them inverted, or half of them empty. Unreadable files are left to the dataset's own check."""
    if not masks:
        return []
    count = min(SAMPLED, len(masks))
    picks = sorted({round(i * (len(masks) - 1) / max(count - 1, 1)) for i in range(count)})
    empty = inverted = read = 0
    for i in picks:
        try:
            fg = _foreground(read_mask(masks[i], by_alpha, zero_one))
        except SourceError:
            continue
        read += 1
        if not fg.any():
            empty += 1
        elif _looks_inverted(fg):
            inverted += 1
    said = []
    if read and inverted * 2 > read - empty > 0:
        said.append(f"{root}: {inverted} of {read} masks sampled look inverted (white covers most of the picture and "
                    f"its edges), and the model learns white as the subject; if your masks mark the background in "
                    f"white, invert them (ImageMagick: mogrify -negate *.png in the masks' folder)")  # fmt: skip
    if read and empty * 2 >= read:
        said.append(f"{root}: {empty} of {read} masks sampled are empty (all background), and the model learns to "
                    f"find nothing; check that the masks are the right files, saved with the subject in white")  # fmt: skip
    return said

"""Procedural figure/ground scenes and clips with exact soft masks, for training and tests.

Each scene is one textured foreground object over a textured background full of distractor
shapes. So that a small model can learn figure from ground, the cue is fixed and documented:

* the **foreground is sharp and saturated**: vivid HSV colours (each texture mixes two hues at
  most 80 degrees apart, so its blends stay vivid), hard (anti-aliased) edges,
  fine structures (hair-like strands 1-3 px wide, rings, holes);
* it is **in front, centred and large**: its centre lies in the middle half of the frame and it
  spans 35-75 % of the short side;
* the **background is soft and muted**: it (distractors included) is blurred with
  sigma 1-2.5 px, blended 65-90 % towards grey and lowered in contrast; distractors are smaller
  than the subject.

Photometric changes (gain, gamma, colour cast, sensor noise, mild lens blur) are applied to the
whole frame after compositing, so they never leak into the mask. The foreground is rendered at
``SUPERSAMPLE`` times the output size and area-downsampled together with its coverage, so mask
edges are fractional and the image is exactly ``alpha * fg + (1 - alpha) * bg`` before the
photometric step. Everything is driven by one ``numpy.random.Generator``: no global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from birefvid.data._tensors import parse_size, to_sample

SUPERSAMPLE = 2
"""Render factor of the foreground layer; higher gives finer alpha steps at the edges."""

RngLike = Union[np.random.Generator, int]


def _rng(rng: RngLike) -> np.random.Generator:
    """Accept a Generator or a seed, so callers can pass either."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Validate an (h, w) size: the generator needs at least 16 px per side."""
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f"scene size must be at least 16x16 (h, w), got {size}")
    return h, w


# ----------------------------------------------------------------------------- textures


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], shape (h, w): a small random grid resized up."""
    small = rng.random((max(2, cells), max(2, cells)), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def _pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A scalar texture in [0, 1] of shape (h, w): gradient, stripes, noise or checker."""
    kind = rng.integers(4)
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    if kind == 0:  # linear gradient in a random direction
        a = rng.uniform(0, np.pi)
        t = xx * np.float32(np.cos(a)) + yy * np.float32(np.sin(a))
        lo, hi = float(t.min()), float(t.max())
        return (t - lo) * np.float32(1.0 / max(hi - lo, 1e-6))
    if kind == 1:  # stripes, sinusoidal or hard
        a = rng.uniform(0, np.pi)
        k = np.float32(2 * np.pi / rng.uniform(4, max(6.0, min(h, w) / 4)))
        s = np.sin(xx * (k * np.float32(np.cos(a))) + yy * (k * np.float32(np.sin(a))))
        return (s > 0).astype(np.float32) if rng.random() < 0.5 else s * np.float32(0.5) + np.float32(0.5)
    if kind == 2:  # multi-octave noise
        out = _smooth_noise(rng, h, w, 4) * np.float32(0.5)
        out += _smooth_noise(rng, h, w, 12) * np.float32(0.3)
        out += _smooth_noise(rng, h, w, 32) * np.float32(0.2)
        return out
    cell = rng.uniform(3, max(4.0, min(h, w) / 6))  # checker
    return ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)


def _vivid_colour(rng: np.random.Generator, near_hue: float | None = None) -> np.ndarray:
    """A saturated RGB colour in [0, 1]: the foreground's palette.

    ``near_hue`` (OpenCV hue, 0-180) keeps the hue within +-40 of it (80 degrees): blends of two
    such colours stay saturated, while blends of opposite hues (red into cyan) pass through grey
    and would break the foreground cue.
    """
    hue = rng.uniform(0, 180) if near_hue is None else (near_hue + rng.uniform(-40, 40)) % 180
    hsv = np.array([[[hue, rng.uniform(170, 255), rng.uniform(130, 255)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _hue(rgb: np.ndarray) -> float:
    """OpenCV hue (0-180) of an RGB colour in [0, 1]."""
    pixel = np.round(rgb * 255).astype(np.uint8)[None, None]
    return float(cv2.cvtColor(pixel, cv2.COLOR_RGB2HSV)[0, 0, 0])


def _any_colour(rng: np.random.Generator) -> np.ndarray:
    """Any RGB colour in [0, 1]: the background's palette (muted later)."""
    return rng.random(3, dtype=np.float32)


def _textured(rng: np.random.Generator, h: int, w: int, vivid: bool) -> np.ndarray:
    """An RGB texture (h, w, 3) in [0, 1] mixing two colours through a pattern."""
    if vivid:  # hue-coherent pair, so the pattern's blends stay saturated
        c0 = _vivid_colour(rng)
        c1 = _vivid_colour(rng, near_hue=_hue(c0))
    else:
        c0, c1 = _any_colour(rng), _any_colour(rng)
    t = _pattern(rng, h, w)
    return cv2.merge([c0[i] + (c1[i] - c0[i]) * t for i in range(3)])


# ----------------------------------------------------------------------------- shapes


def _blob_points(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """A closed star-convex polygon around (cx, cy): a wobbly blob or a sharp polygon."""
    n = int(rng.integers(5, 16))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.55, 1.0, n)
    if rng.random() < 0.5:  # smooth blob: densify with a low-pass radius profile
        k = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        coef = rng.normal(0, 0.12, (3, 2))
        rad = r * (0.8 + sum(c[0] * np.cos((i + 2) * k) + c[1] * np.sin((i + 2) * k) for i, c in enumerate(coef)))
        ang = k
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)
    return pts


def _draw_shape(canvas: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float, value) -> None:
    """Fill a random ellipse or polygon/blob of radius ~r at (cx, cy) into ``canvas``."""
    shift = 4  # sub-pixel precision for cv2 drawing
    scale = 1 << shift
    if rng.random() < 0.4:
        axes = (int(r * rng.uniform(0.5, 1.0) * scale), int(r * rng.uniform(0.4, 1.0) * scale))
        cv2.ellipse(canvas, (int(cx * scale), int(cy * scale)), axes, float(rng.uniform(0, 180)),
                    0, 360, value, -1, cv2.LINE_AA, shift)
    else:
        pts = (_blob_points(rng, cx, cy, r) * scale).astype(np.int32)
        cv2.fillPoly(canvas, [pts], value, cv2.LINE_AA, shift)


def _bezier(p: np.ndarray, n: int = 48) -> np.ndarray:
    """Points along the cubic Bezier curve with control points ``p`` (4, 2)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return ((1 - t) ** 3) * p[0] + 3 * ((1 - t) ** 2) * t * p[1] + 3 * (1 - t) * t * t * p[2] + t ** 3 * p[3]


def _foreground_coverage(rng: np.random.Generator, side: int, px: float) -> np.ndarray:
    """Coverage (side, side) uint8 of a foreground object with thin parts, rings and holes.

    ``px`` is how many canvas pixels make one output pixel at the object's base scale, so
    strands come out 1-3 output pixels wide.
    """
    cov = np.zeros((side, side), np.uint8)
    c = side / 2.0
    body_r = side * rng.uniform(0.22, 0.32)
    for _ in range(int(rng.integers(1, 4))):  # body: union of 1-3 parts
        off = rng.normal(0, body_r * 0.35, 2)
        _draw_shape(cov, rng, c + off[0], c + off[1], body_r * rng.uniform(0.6, 1.0), 255)

    shift, scale = 4, 16
    ys, xs = np.nonzero(cov > 127)
    if rng.random() < 0.6 and len(xs):  # holes punched through the body
        for _ in range(int(rng.integers(1, 3))):
            i = rng.integers(len(xs))
            _draw_shape(cov, rng, xs[i], ys[i], body_r * rng.uniform(0.08, 0.22), 0)
    if rng.random() < 0.5:  # a ring attached to the body
        ang = rng.uniform(0, 2 * np.pi)
        rr = body_r * rng.uniform(0.3, 0.6)
        rc = (c + np.cos(ang) * body_r * 0.9, c + np.sin(ang) * body_r * 0.9)
        thick = max(1, int(round(px * rng.uniform(2, 5))))
        cv2.circle(cov, (int(rc[0] * scale), int(rc[1] * scale)), int(rr * scale), 255, thick, cv2.LINE_AA, shift)
    if len(xs):  # hair-like strands: tufts of Bezier curves leaving the body
        for _ in range(int(rng.integers(1, 4))):
            i = rng.integers(len(xs))
            root = np.array([xs[i], ys[i]], np.float64)
            base = np.arctan2(root[1] - c, root[0] - c) + rng.normal(0, 0.4)
            length = side * rng.uniform(0.15, 0.35)
            width = max(1, int(round(px * rng.uniform(1.0, 3.0))))
            for _ in range(int(rng.integers(2, 9))):
                a = base + rng.normal(0, 0.25)
                end = root + length * rng.uniform(0.6, 1.0) * np.array([np.cos(a), np.sin(a)])
                bend = rng.normal(0, length * 0.3, (2, 2))
                ctrl = np.stack([root, root + (end - root) / 3 + bend[0], root + 2 * (end - root) / 3 + bend[1], end])
                pts = (np.clip(_bezier(ctrl), 0, side - 1) * scale).astype(np.int32)
                cv2.polylines(cov, [pts], False, 255, width, cv2.LINE_AA, shift)
    return cov


# ----------------------------------------------------------------------------- background


def _paste(bg: np.ndarray, cov: np.ndarray, tex: np.ndarray, x0: int, y0: int) -> None:
    """Blend ``tex`` into ``bg`` in place through coverage ``cov`` (uint8), clipped at the borders."""
    h, w = bg.shape[:2]
    ph, pw = cov.shape
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + pw, w), min(y0 + ph, h)
    if xa >= xb or ya >= yb:
        return
    a = cov[ya - y0:yb - y0, xa - x0:xb - x0].astype(np.float32)[..., None] * np.float32(1 / 255)
    region = bg[ya:yb, xa:xb]
    region += (tex[ya - y0:yb - y0, xa - x0:xb - x0] - region) * a


def _background(rng: np.random.Generator, h: int, w: int, subject_r: float) -> np.ndarray:
    """A muted, blurred RGB background (h, w, 3) in [0, 1] with distractor shapes."""
    bg = _textured(rng, h, w, vivid=False)
    if rng.random() < 0.5:  # a second texture blended in through smooth noise
        t = _smooth_noise(rng, h, w, 3)[..., None]
        bg += (_textured(rng, h, w, vivid=bool(rng.random() < 0.5)) - bg) * t
    for _ in range(int(rng.integers(2, 9))):  # distractors: smaller than the subject
        r = subject_r * rng.uniform(0.15, 0.6)
        side = int(2 * r) + 4
        cov = np.zeros((side, side), np.uint8)
        _draw_shape(cov, rng, side / 2, side / 2, r, 255)
        tex = _textured(rng, side, side, vivid=bool(rng.random() < 0.5))
        _paste(bg, cov, tex, int(rng.uniform(-r, w - r)), int(rng.uniform(-r, h - r)))
    if rng.random() < 0.5:  # thin distractor curves, so thinness alone is not the cue
        line = np.zeros((h, w), np.uint8)
        p = rng.uniform(0, 1, (4, 2)) * [w, h]
        cv2.polylines(line, [(_bezier(p) * 16).astype(np.int32)], False, 255, int(rng.integers(1, 4)), cv2.LINE_AA, 4)
        _paste(bg, line, np.broadcast_to(_any_colour(rng), (h, w, 3)), 0, 0)
    # the ground cue: soft, grey-ish, low contrast
    bg = cv2.GaussianBlur(bg, (0, 0), float(rng.uniform(1.0, 2.5)))
    grey = bg.mean(axis=2, keepdims=True)
    bg += (grey - bg) * np.float32(rng.uniform(0.65, 0.9))  # below ~35 % saturation: clear of the subject's
    mid = np.float32(bg.mean())
    bg -= mid
    bg *= np.float32(rng.uniform(0.55, 0.85))
    bg += mid
    return bg


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Layer:
    """A premultiplied foreground layer (side, side, 4) drawn in object coordinates."""

    rgba: np.ndarray  # float32, premultiplied rgb + coverage, in [0, 1]
    base_scale: float  # canvas pixels -> output-supersampled pixels at t=0


def _make_layer(rng: np.random.Generator, h: int, w: int) -> tuple[_Layer, float]:
    """Draw the subject: returns its layer and its radius in output pixels."""
    short = min(h, w)
    span = short * rng.uniform(0.35, 0.75)  # subject diameter in output px
    side = int(round(short * SUPERSAMPLE * 0.9))
    # the body radius is ~0.27 side, i.e. a diameter of ~0.55 side (+ strands)
    base_scale = span * SUPERSAMPLE / (0.55 * side)
    px = SUPERSAMPLE / base_scale  # canvas px per output px
    cov = _foreground_coverage(rng, side, px).astype(np.float32) * np.float32(1 / 255)
    # textures are drawn at output resolution and upsampled: the layer is downsampled again later
    small = max(8, side // SUPERSAMPLE)
    tex = _textured(rng, small, small, vivid=True)
    if rng.random() < 0.5:  # a second vivid texture on part of the object
        t = (_smooth_noise(rng, small, small, 4) > 0.5).astype(np.float32)[..., None]
        tex += (_textured(rng, small, small, vivid=True) - tex) * t
    tex = cv2.resize(tex, (side, side), interpolation=cv2.INTER_LINEAR)
    rgba = cv2.merge([tex[..., 0] * cov, tex[..., 1] * cov, tex[..., 2] * cov, cov])
    return _Layer(rgba, base_scale), span / 2.0


def _place(layer: _Layer, h: int, w: int, centre: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """Warp the layer into the frame and area-downsample: (h, w, 4) premultiplied rgb + alpha."""
    side = layer.rgba.shape[0]
    s = layer.base_scale * scale
    m = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), float(angle), float(s))
    m[:, 2] += centre * SUPERSAMPLE - side / 2.0
    big = cv2.warpAffine(layer.rgba, m, (w * SUPERSAMPLE, h * SUPERSAMPLE), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if SUPERSAMPLE == 1:
        return big
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class _Photometric:
    """Whole-frame camera effects: gain, gamma, colour cast, noise, mild lens blur."""

    gain: float
    gamma: float
    cast: np.ndarray
    noise: float
    blur: float

    @staticmethod
    def draw(rng: np.random.Generator) -> "_Photometric":
        """Draw a random camera setting."""
        return _Photometric(
            gain=float(rng.uniform(0.7, 1.3)),
            gamma=float(rng.uniform(0.8, 1.25)),
            cast=rng.uniform(0.9, 1.1, 3).astype(np.float32),
            noise=float(rng.uniform(0.0, 0.025)),
            blur=float(rng.uniform(0.3, 0.6)) if rng.random() < 0.25 else 0.0,
        )

    def apply(self, img: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
        """Apply the effects to a float RGB image in [0, 1] and quantize to uint8."""
        if self.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.blur)
        img = cv2.pow(np.clip(img * (self.cast * np.float32(self.gain * gain)), 0, 1), self.gamma)
        if self.noise > 0:
            img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(self.noise)
        return cv2.convertScaleAbs(np.maximum(img, 0, out=img), alpha=255.0)  # rounds and saturates


def _composite(bg: np.ndarray, placed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied over: returns the clean float image and the mask."""
    alpha = np.clip(placed[..., 3], 0.0, 1.0)
    img = placed[..., :3] + bg * (1.0 - alpha[..., None])
    return img, alpha.astype(np.float32)


def make_scene(rng: RngLike, size: tuple[int, int] = (256, 256)) -> tuple[np.ndarray, np.ndarray]:
    """One random scene: (image uint8 (H, W, 3) RGB, mask float32 (H, W) in [0, 1])."""
    g = _rng(rng)
    h, w = _check_size(size)
    layer, radius = _make_layer(g, h, w)
    bg = _background(g, h, w, radius)
    centre = np.array([w * g.uniform(0.25, 0.75), h * g.uniform(0.25, 0.75)])
    placed = _place(layer, h, w, centre, g.uniform(0, 360), g.uniform(0.9, 1.1))
    img, mask = _composite(bg, placed)
    return _Photometric.draw(g).apply(img, g), mask


def make_clip(seed: int, n_frames: int, size: tuple[int, int] = (256, 256)) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A clip of one subject moving smoothly over a slowly panning background, with lighting drift.

    Yields ``n_frames`` pairs (image uint8 (H, W, 3) RGB, mask float32 (H, W)); the same seed
    always gives the same frames. Motion: translation along a drifting path, rotation and a
    gentle scale oscillation; lighting: a smooth gain drift over the clip.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    g = _rng(seed)
    h, w = _check_size(size)
    layer, radius = _make_layer(g, h, w)
    margin = max(4, int(min(h, w) * 0.1))
    bg_big = _background(g, h + 2 * margin, w + 2 * margin, radius)
    cam = _Photometric.draw(g)

    c0 = np.array([w * g.uniform(0.35, 0.65), h * g.uniform(0.35, 0.65)])
    vel = g.normal(0, min(h, w) * 0.006, 2)  # px per frame
    wob_amp = g.uniform(0, min(h, w) * 0.06, 2)
    wob_freq = g.uniform(0.03, 0.12, 2)
    wob_phase = g.uniform(0, 2 * np.pi, 2)
    a0, spin = g.uniform(0, 360), g.normal(0, 1.0)  # degrees, degrees per frame
    s_amp, s_freq, s_phase = g.uniform(0, 0.1), g.uniform(0.02, 0.08), g.uniform(0, 2 * np.pi)
    pan = g.normal(0, 0.25, 2)  # background px per frame
    drift_a, drift_f, drift_p = g.uniform(0, 0.15), g.uniform(0.01, 0.05), g.uniform(0, 2 * np.pi)
    lo = np.array([w * 0.2, h * 0.2])
    hi = np.array([w * 0.8, h * 0.8])

    for t in range(n_frames):
        raw = c0 + vel * t + wob_amp * np.sin(wob_freq * t + wob_phase)
        span = hi - lo  # keep the subject in the middle by reflecting at the band's edges
        centre = lo + np.abs(((raw - lo) % (2 * span)) - span)
        centre = np.where(span > 0, centre, raw)
        scale = 1.0 + s_amp * np.sin(s_freq * t + s_phase)
        placed = _place(layer, h, w, centre, a0 + spin * t, scale)
        off = np.clip(margin + pan * t, 0, 2 * margin)
        ox, oy = int(round(off[0])), int(round(off[1]))
        bg = bg_big[oy:oy + h, ox:ox + w]
        img, mask = _composite(bg, placed)
        gain = 1.0 + drift_a * np.sin(drift_f * t + drift_p)
        yield cam.apply(img, g, gain=gain), mask


class SceneDataset(Dataset):
    """``n`` procedural scenes as training samples: (normalized image (3, H, W), mask (1, H, W)).

    Item ``i`` is a pure function of ``(seed, i)``, so the data are the same in any order, in any
    worker and after a resume. Scenes are generated on access (a few ms each at 256 px): make
    ``n`` at least steps x batch size to never repeat one. ``flip`` mirrors a seeded half of the
    items horizontally.
    """

    def __init__(self, n: int, size: "int | tuple[int, int]" = 256, seed: int = 0, *, flip: bool = True) -> None:
        if n <= 0:
            raise ValueError(f"SceneDataset needs n > 0, got {n}")
        self.n = int(n)
        self.size = _check_size(parse_size(size))
        self.seed = int(seed)
        self.flip = flip

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.n:
            raise IndexError(f"SceneDataset index {index} out of range [0, {self.n})")
        rng = np.random.default_rng([self.seed, index])
        flip = bool(rng.random() < 0.5) and self.flip  # always draw: same scene with or without flip
        image, mask = make_scene(rng, self.size)
        return to_sample(image, mask, flip=flip)

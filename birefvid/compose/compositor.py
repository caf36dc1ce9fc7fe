"""Pick the compositing op for an output kind: frames + alphas (on the device) -> output pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from ..job import OUTPUT_KINDS, OVERLAY_OPACITY, MatteSpec, OutputKind, OutputSpec, check_output_options
from .background import Background
from ..colors import parse_color
from .band import composite_band, rgba_band
from .blur_band import blur_background_band
from .foreground import estimate_foreground, foreground_difference
from .guided import guided_upsample
from .refine import refine_mattes
from .resample import resize
from .ops import blur_background, composite, greenscreen, over_checkerboard, overlay, to_mask, to_rgba

__all__ = ["OUTPUT_KINDS", "SINK_KIND", "Compositor", "OutputKind"]

SINK_KIND = {"alpha": "alpha", "mask": "mask", "foreground": "rgb", "green": "rgb", "composite": "rgb", "blur": "rgb", "overlay": "rgb"}


@dataclass
class Compositor:
    """Turns uint8 frames (N, 3, H, W) and alphas (N, 1, H, W) into the output's pixels (N, C, H, W) uint8
    (uint16 with ``bits`` > 8)."""

    kind: OutputKind
    foreground: bool = True
    key: tuple[int, int, int] = (0, 255, 0)
    blur_sigma: float = 16.0
    background: Optional[Background] = None
    # the overlay's tint (a colour as parse_color takes it) and its strength
    overlay_color: tuple[int, int, int] = (255, 0, 0)
    overlay_opacity: float = OVERLAY_OPACITY
    # blur at 1/k of the size (see blur_background); None: k = sigma // 8, at ~1/3 of the full-size cost
    # (a 720p frame at sigma 16: 74 -> 28 ms on one core with the foreground estimate). The blur comes out
    # ~4% wider (its boxes round differently): within 1 grey level of the full-size one on the generated
    # 720p clips (mean 0.14), up to 4 on steep synthetic ramps. Live mode asks for sigma // 4, for frame rate.
    blur_work_scale: Optional[int] = None
    # foreground estimation runs on frames shrunk by an integer factor to at most this long side (see
    # estimate_foreground's work_scale): at 720p (1/3 size) ~20x less CPU than at full size, and
    # within ~1 grey level of it, on average, on the output's soft edges
    foreground_side: int = 480
    # threshold / grow / feather of the matte, at the frames' size, before anything uses it
    matte: MatteSpec = field(default_factory=MatteSpec)
    # bits of the output's samples: 8 gives uint8 pixels; more gives uint16 in [0, 65535] for an encoder
    # of 10 bits or more (ProRes 4444, 16-bit PNG), composited in float from the frames' deep pictures
    bits: int = 8

    def __post_init__(self) -> None:
        check_output_options(self.kind, self.background is not None)
        self.key = parse_color(self.key)
        self.overlay_color = parse_color(self.overlay_color)
        if self.blur_work_scale is None:
            self.blur_work_scale = max(1, int(self.blur_sigma // 8))

    @classmethod
    def for_output(cls, spec: OutputSpec, *, background: Optional[Background] = None, bits: int = 8) -> "Compositor":
        """The compositor of one output of a file job: its kind and its kind's options from ``spec``; ``background``
        the open ``spec.background`` of a composite; ``bits`` those of the samples its sink takes."""
        return cls(spec.kind, foreground=spec.foreground, key=spec.key_color, blur_sigma=spec.blur_sigma, background=background,  # type: ignore[arg-type]
                   overlay_color=spec.overlay_color, overlay_opacity=spec.overlay_opacity, matte=spec.matte, bits=bits)  # type: ignore[arg-type]  # fmt: skip

    def __call__(self, images: torch.Tensor, alphas: torch.Tensor, deep: Optional[torch.Tensor] = None,
                 coverage: Optional[torch.Tensor] = None, times: Optional[Sequence[Optional[float]]] = None) -> torch.Tensor:  # fmt: skip
        """Output pixels for uint8 frames (N, 3, H, W) and mattes (N, 1, h, w) at any size (resized to H x W).

        ``deep``: the same frames at more than 8 bits, float (N, 3, H, W) in [0, 1], on the frames'
        device; with ``bits`` > 8 the output's colour comes from them (else from ``images``).
        ``coverage``: the frames' own alpha (N, 1, H, W) float in [0, 1], which the shaped matte is
        multiplied by, so what a transparent picture hides stays hidden.
        ``times``: the frames' times in seconds (None where unknown), by which a video ``background`` is played.
        """
        times = None if times is None else list(times)
        if times is not None and len(times) != images.shape[0]:
            raise ValueError(f"times: {len(times)} for {images.shape[0]} frames")
        if self.matte.upsample == "guided":
            matte, alphas = alphas, guided_upsample(images, alphas)
        else:
            matte, alphas = alphas, fit_alphas(alphas, images.shape[-2:])
        if self.matte.active:  # the shaped matte is the matte from here on, the foreground estimate's too
            alphas = matte = refine_mattes(alphas, self.matte)
        if coverage is not None:
            alphas = matte = alphas.float() * coverage
            if self.kind == "overlay":  # what the picture hides shows as checks, not as the colours stored under it
                images = over_checkerboard(images, coverage)
                deep = None if deep is None else over_checkerboard(deep, coverage)
        if self.kind == "foreground":  # the alpha output's RGB, exactly: RVM's fgr for a two-file (fgr + pha) workflow
            return _rgb_of(self._pixels("alpha", images, alphas, matte, deep))
        return self._pixels(self.kind, images, alphas, matte, deep, times)

    def _pixels(self, kind: str, images: torch.Tensor, alphas: torch.Tensor, matte: torch.Tensor,
                deep: Optional[torch.Tensor], times: Optional[list[Optional[float]]] = None) -> torch.Tensor:  # fmt: skip
        """``kind``'s pixels from the fitted, shaped ``alphas`` (``matte``: the same before ``coverage``); ``times``: the
        frames' own, handed down rather than kept on the compositor, which two threads may call at once."""
        if kind == "mask":
            return to_mask(alphas, self.bits)
        if kind == "overlay":  # the frame's own colours under the tint: no foreground estimate
            return overlay(deep if self.bits > 8 and deep is not None else images, alphas, self.overlay_color, self.overlay_opacity, self.bits)
        work_scale = max(1, math.ceil(max(images.shape[-2:]) / self.foreground_side))
        if self.bits > 8:
            return self._deep(kind, deep if deep is not None else images, alphas, work_scale, times)
        if kind == "blur" and images.dtype == torch.uint8 and images.device.type == "cpu":
            # blurred small in bytes, blended on the soft band only (see compose.blur_band): ~3.5x faster
            small = foreground_difference(images, matte, work_scale=work_scale, band_only=True) if self.foreground else None
            diff = small.difference if small is not None else None
            return blur_background_band(images, alphas, self.blur_sigma, self.blur_work_scale, diff)
        if kind == "blur" or images.dtype != torch.uint8:
            fg = estimate_foreground(images, alphas, work_scale=work_scale) if self.foreground else None
            if kind == "alpha":
                return to_rgba(images, alphas, fg)
            if kind == "green":
                return greenscreen(images, alphas, self.key, fg)
            if kind == "blur":
                return blur_background(images, alphas, self.blur_sigma, fg, work_scale=self.blur_work_scale)
            assert self.background is not None
            return composite(images, alphas, self._background_frames(images.shape[0], times), fg)
        # alpha, green, composite of uint8 frames: float work on the soft edge band only (see compose.band)
        # from the matte as it came; alpha outputs also show the small F where transparent, so they need it whole
        small = foreground_difference(images, matte, work_scale=work_scale, band_only=kind != "alpha") if self.foreground else None
        diff = small.difference if small is not None else None
        if kind == "alpha":
            return rgba_band(images, alphas, diff, fill=small.foreground if small is not None else None)
        if kind == "green":
            key = torch.tensor(self.key, dtype=torch.uint8, device=images.device).view(1, 3, 1, 1)
            return composite_band(images, alphas, key, diff)
        assert self.background is not None
        return composite_band(images, alphas, self._background_frames(images.shape[0], times), diff)


    def _deep(self, kind: str, images: torch.Tensor, alphas: torch.Tensor, work_scale: int,
              times: Optional[list[Optional[float]]] = None) -> torch.Tensor:  # fmt: skip
        """uint16 output pixels, composited in float over the whole frame (the 8-bit band paths work in bytes).

        On the CPU one frame at a time into the batch's output: each frame's float foreground and its
        temporaries are full-size float copies (a 4K frame's foreground alone is 100 MB), and a batch's
        all at once raised two 10-bit 4K frames' green to 9.8 outputs' worth of memory; the bytes are the same.
        """
        if images.shape[0] > 1 and images.device.type == "cpu":
            first = self._deep_batch(kind, images[:1], alphas[:1], work_scale, None if times is None else times[:1])
            layout = torch.channels_last if not first.is_contiguous() and first.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
            out = torch.empty((images.shape[0], *first.shape[1:]), dtype=first.dtype, memory_format=layout)  # as the batch's own
            out[:1].copy_(first)
            del first
            for i in range(1, images.shape[0]):
                at = None if times is None else times[i : i + 1]
                out[i : i + 1].copy_(self._deep_batch(kind, images[i : i + 1], alphas[i : i + 1], work_scale, at))
            return out
        return self._deep_batch(kind, images, alphas, work_scale, times)

    def _deep_batch(self, kind: str, images: torch.Tensor, alphas: torch.Tensor, work_scale: int,
                    times: Optional[list[Optional[float]]] = None) -> torch.Tensor:  # fmt: skip
        """``_deep`` of the whole batch at once."""
        bits = self.bits
        fg = estimate_foreground(images, alphas, work_scale=work_scale) if self.foreground else None
        if kind == "alpha":
            return to_rgba(images, alphas, fg, bits=bits)
        if kind == "green":
            return greenscreen(images, alphas, self.key, fg, bits=bits)
        if kind == "blur":
            return blur_background(images, alphas, self.blur_sigma, fg, work_scale=self.blur_work_scale, bits=bits)
        assert self.background is not None
        return composite(images, alphas, self._background_frames(images.shape[0], times), fg, bits=bits)


    def _background_frames(self, n: int, times: Optional[list[Optional[float]]]) -> torch.Tensor:
        """The background of ``n`` frames at ``times`` (None: each the background's next)."""
        assert self.background is not None
        return self.background.frames(n, times)


def _rgb_of(rgba: torch.Tensor) -> torch.Tensor:
    """The RGB planes (N, 3, H, W) of RGBA pixels, channel-last in memory as the other kinds' (sinks read them as (N, H, W, 3))."""
    return rgba[:, :3].contiguous(memory_format=torch.channels_last)


def fit_alphas(alphas: torch.Tensor, size: "torch.Size | tuple[int, int]") -> torch.Tensor:
    """Mattes resized (bilinear, as ``Segmenter.predict`` does) to ``size`` (H, W); unchanged when they fit."""
    if tuple(alphas.shape[-2:]) == tuple(size):
        return alphas
    return resize(alphas.float(), (int(size[0]), int(size[1])), "bilinear").clamp_(0.0, 1.0)  # a new tensor: sizes differ

"""Temporal mask smoothers that stop matte flicker between video frames.

Every smoother has the same streaming interface, so the pipeline runner treats them alike:

    out = smoother.push(alphas, images=None)   # (N, 1, H, W) in, 0..N smoothed frames out, in order
    out = smoother.flush()                     # the frames still held back, at end of stream
    smoother.reset()                           # forget history (seek, reconnect, new stream)

``delay`` says how many frames a smoother holds back (0 for online smoothers). When frames
are passed as ``images`` and a ``scene_cut_threshold`` is set, the smoother resets itself at
scene cuts so one shot's mask never bleeds into the next.

Kinds: ``none``, ``ema`` (motion-aware exponential average), ``lookahead`` (centred median
over +-k frames; ``warp=True`` carries the neighbours onto the centre frame along optical
flow first) and ``flow`` (online: the history is warped along optical flow before the blend,
see ``birefvid.temporal.flow_smoother``). ``scripts/bench_temporal.py`` measures them.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from typing import TYPE_CHECKING, Literal, NamedTuple, Optional, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from ..compose.resample import resize, resize_uint8
from ..errors import ConfigError

if TYPE_CHECKING:
    from .flow_smoother import FlowAligner, Thumb

logger = logging.getLogger(__name__)

SmootherKind = Literal["none", "ema", "lookahead", "flow"]

_CUT_SIZE = (36, 64)  # frames are compared at this size: cheap, and insensitive to noise


def _check_alphas(alphas: Tensor) -> None:
    if not isinstance(alphas, Tensor) or alphas.ndim != 4 or alphas.shape[1] != 1 or not alphas.is_floating_point():
        got = f"{getattr(alphas, 'dtype', type(alphas).__name__)} {tuple(getattr(alphas, 'shape', ()))}"
        raise ValueError(f"alphas must be a float tensor (N, 1, H, W) in [0, 1], got {got}")


def _small(images: Tensor) -> Tensor:
    """Downscale frames (N, 3, H, W) uint8 or float to a small float thumbnail in [0, 1]."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8 and images.device.type == "cpu":
        # shrink the uint8 pixels first: converting a 720p frame to float cost ~5 ms, the area resize of
        # the bytes ~0.3 ms; the thumbnail differs by < 1/255 from the float route, far below any cut
        return resize_uint8(images, _CUT_SIZE).float().div_(255.0)
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return resize(x, _CUT_SIZE, "area")  # OpenCV on the CPU: ~10x faster than adaptive_avg_pool2d there


def _small_from_thumbs(thumbs: Sequence["Thumb"]) -> Tensor:
    """``_small`` of frames from their flow thumbnails' colours (0..255): area averages over nearly the same
    footprints, ~1-2/255 apart on average, far below a cut."""
    colours = torch.from_numpy(np.stack([t.color for t in thumbs])).permute(0, 3, 1, 2)
    return resize(colours, _CUT_SIZE, "area").div(255.0)


def detect_scene_cut(prev_img: Tensor, cur_img: Tensor, threshold: float = 0.15) -> bool:
    """True when two frames differ enough to be a cut: mean abs difference of thumbnails > ``threshold``.

    Frames are (3, H, W) or (1, 3, H, W), uint8 or float in [0, 1]. Cheap (a 36x64 thumbnail
    each); camera motion within a shot typically stays well below 0.1.
    """
    return bool((_small(cur_img) - _small(prev_img)).abs().mean() > threshold)


class _CutDetector:
    """Remembers the previous frame's thumbnail and flags cuts for a batch with one device sync."""

    def __init__(self, threshold: Optional[float]) -> None:
        if threshold is not None and not 0 < threshold < 1:
            raise ConfigError(f"scene_cut_threshold must be in (0, 1) or None, got {threshold}")
        self.threshold = threshold
        self._prev: Optional[Tensor] = None

    def flags(self, images: Optional[Tensor], n: int, thumbs: Optional[Sequence["Thumb"]] = None) -> list[bool]:
        """Cut flags for a batch of ``n`` frames; ``thumbs``, the frames' flow thumbnails when the caller
        has them, are shrunk further instead of the frames (a 720p frame's own shrink cost ~0.6 ms)."""
        if self.threshold is None or images is None:
            return [False] * n
        if images.shape[0] != n:
            raise ValueError(f"got {images.shape[0]} images for {n} alphas; pass the frames the masks belong to")
        small = _small_from_thumbs(thumbs) if thumbs else _small(images)
        seq = small if self._prev is None else torch.cat([self._prev, small])
        diffs = (seq[1:] - seq[:-1]).abs().mean(dim=(1, 2, 3)) > self.threshold
        flags = diffs.tolist()
        if self._prev is None:
            flags = [False] + flags
        self._prev = small[-1:]
        return flags

    def reset(self) -> None:
        self._prev = None


def _empty_like(like: Optional[Tensor]) -> Tensor:
    if like is None:
        return torch.empty((0, 1, 0, 0))
    return like.new_empty((0, *like.shape[1:]))


class Smoother(Protocol):
    """The streaming interface every smoother follows."""

    delay: int

    def push(self, alphas: Tensor, images: Optional[Tensor] = None) -> Tensor: ...

    def flush(self) -> Tensor: ...

    def reset(self) -> None: ...


class PassthroughSmoother:
    """No smoothing: returns what it is given (the 'none' choice, same interface as the others)."""

    delay = 0

    def __init__(self) -> None:
        self._like: Optional[Tensor] = None

    def push(self, alphas: Tensor, images: Optional[Tensor] = None) -> Tensor:
        """Return ``alphas`` unchanged."""
        _check_alphas(alphas)
        self._like = alphas[:0]
        return alphas

    def flush(self) -> Tensor:
        """Nothing is held back: returns an empty (0, 1, H, W) tensor."""
        return _empty_like(self._like)

    def reset(self) -> None:
        """Nothing to forget."""


def ema(
    previous: Optional[Tensor], current: Tensor, weight: "float | Tensor", motion_threshold: Optional[float] = None
) -> Tensor:
    """One exponential-moving-average step: ``weight`` of the history, ``1 - weight`` of the new mask.

    ``weight`` = 0 returns ``current``; ``previous`` None (stream start) returns ``current``.
    With ``motion_threshold`` t, each pixel's history weight depends on d = |current - previous|:
    full ``weight`` for d <= t/2 (flicker: smooth it), fading linearly to 0 at d >= t (motion:
    trust the new frame), so moving edges follow the subject instead of leaving a ghost.
    ``weight`` may also be a per-pixel tensor broadcastable to ``current`` (the flow smoother
    passes weight x flow confidence).
    """
    if previous is None:
        return current
    w: Tensor | float = weight
    if motion_threshold is not None:
        d = (current - previous).abs()
        w = weight * ((motion_threshold - d) / (0.5 * motion_threshold)).clamp_(0.0, 1.0)
    return current + w * (previous - current)


class OnlineSmoother:
    """What every zero-delay smoother shares: each pushed frame comes straight back, so ``flush()`` has nothing."""

    delay = 0
    _like: Optional[Tensor] = None

    def push(self, alphas: Tensor, images: Optional[Tensor] = None) -> Tensor:
        raise NotImplementedError

    def __call__(self, alphas: Tensor, images: Optional[Tensor] = None) -> Tensor:
        return self.push(alphas, images)

    def _blend_options(self, kind: str, weight: float, motion_threshold: Optional[float], scene_cut_threshold: Optional[float]) -> None:
        """Check and keep the options of a history blend (``ema``): share of history, motion gate, cut detector."""
        if not 0 <= weight < 1:
            raise ConfigError(f"{kind} weight must be in [0, 1) (share of history kept; 0 = off), got {weight}")
        if motion_threshold is not None and not 0 < motion_threshold <= 1:
            raise ConfigError(f"motion_threshold must be in (0, 1] or None (no motion gate), got {motion_threshold}")
        self.weight = float(weight)
        self.motion_threshold = motion_threshold
        self._cuts = _CutDetector(scene_cut_threshold)
        self._state: Optional[Tensor] = None

    def _emit(self, out: list[Tensor], alphas: Tensor) -> Tensor:
        """The smoothed frames of one push (remembering the mask layout for ``flush``)."""
        self._like = alphas[:0]
        return torch.cat(out) if out else alphas

    def flush(self) -> Tensor:
        """An online smoother holds nothing back: returns an empty (0, 1, H, W) tensor."""
        return _empty_like(self._like)


class EmaSmoother(OnlineSmoother):
    """Online, zero-delay smoother: motion-aware EMA over frames in order, across batch boundaries."""

    def __init__(
        self,
        weight: float = 0.6,
        motion_threshold: Optional[float] = 0.5,
        scene_cut_threshold: Optional[float] = None,
    ) -> None:
        self._blend_options("ema", weight, motion_threshold, scene_cut_threshold)

    def push(self, alphas: Tensor, images: Optional[Tensor] = None) -> Tensor:
        """Smooth a batch (N, 1, H, W) continuing from the previous batch; returns N frames."""
        _check_alphas(alphas)
        if self._state is not None and (
            self._state.shape[1:] != alphas.shape[1:] or self._state.device != alphas.device
        ):
            logger.debug("mask size or device changed; EMA history reset")
            self._state = None
        flags = self._cuts.flags(images, alphas.shape[0])
        out = []
        for i, cut in enumerate(flags):
            if cut:
                logger.debug("scene cut detected; EMA history reset")
                self._state = None
            self._state = ema(self._state, alphas[i : i + 1], self.weight, self.motion_threshold)
            out.append(self._state)
        return self._emit(out, alphas)

    def reset(self) -> None:
        """Forget the history (scene cut, seek, reconnect): the next frame passes through as is."""
        self._state = None
        self._cuts.reset()


def _median3(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    return torch.maximum(torch.minimum(x, y), torch.minimum(torch.maximum(x, y), z))


def median_of(stack: "Tensor | Sequence[Tensor]") -> Tensor:
    """Median over dim 0 (the lower one for an even count), as ``stack.median(dim=0).values``.

    Three or five items (look-ahead windows 1 and 2) go through min/max networks instead: the
    same values (a median picks one of its inputs), ~4x faster than torch.median on the CPU.
    ``stack`` may be a list of same-shaped tensors: those networks take them as they are, without
    the stacked copy (the look-ahead's five 256² masks: ~0.3 ms a frame on one core here).
    """
    items = stack.unbind(0) if isinstance(stack, Tensor) else tuple(stack)
    if len(items) == 3:
        return _median3(*items)
    if len(items) == 5:
        a, b, c, d, e = items
        low = torch.maximum(torch.minimum(a, b), torch.minimum(c, d))  # neither of the 2 smallest of a..d
        high = torch.minimum(torch.maximum(a, b), torch.maximum(c, d))  # neither of the 2 largest
        return _median3(e, low, high)
    return (stack if isinstance(stack, Tensor) else torch.stack(items)).median(dim=0).values


class _Held(NamedTuple):
    """One frame in the look-ahead window: its mask, a key naming the frame, its flow thumbnail."""

    mask: Tensor
    key: int
    thumb: Optional["Thumb"]


class LookaheadSmoother:
    """Offline, centred temporal filter over frames t-k..t+k (file mode); holds at most 2k+1 masks.

    Each frame is emitted once its k future neighbours have arrived, so output lags input by
    ``delay`` = k frames; ``flush()`` emits the tail. Stream ends are padded by repeating the
    first/last frame. The default median removes isolated flicker; ``mode="mean"`` averages.

    ``warp=True`` (recommended for video; off by default so existing callers keep their
    results) first carries each neighbour onto the centre frame along optical flow
    (``FlowAligner``: DIS on thumbnails of at most ``max_side`` px between neighbouring
    frames, each pair once; frames two apart chained through the frame between, which halved
    the DIS calls with the benchmark's figures unchanged or slightly better; zero motion where
    it explains the frames as well), and where that carry is
    not trusted uses the centre frame's own mask instead, so a moving subject is filtered
    where it *is*: no lag, thin parts that move more than their width per frame survive, and
    a cut the detector misses does not leak (the carry across it is not trusted). Warping
    needs the frames (``push(alphas, images)``, as the file pipeline does); pushes without
    them are filtered unwarped. On ``scripts/bench_temporal.py`` (tiny model, noisy generated
    clips) the unwarped median cost 10 IoU points on a fast subject and 9 on a camera pan;
    warped, no clip lost more than 0.1 point, and the shimmer measured along the true motion
    fell by 33 % (moving subject), 46 % (pan) and 69 % (still shot). A window of 3 gained
    1-4 points of that for 50 % more flow work; ``mode="mean"`` kept more IoU but cut less
    shimmer on the pan.
    """

    def __init__(
        self,
        window: int = 2,
        mode: Literal["median", "mean"] = "median",
        scene_cut_threshold: Optional[float] = None,
        warp: bool = False,
        max_side: int = 160,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ConfigError(f"lookahead window must be an int >= 0 (frames on each side), got {window!r}")
        if mode not in ("median", "mean"):
            raise ConfigError(f"lookahead mode must be 'median' or 'mean', got {mode!r}")
        self.window = window
        self.mode = mode
        self.delay = window
        self.warp = bool(warp)
        self._aligner: Optional[FlowAligner] = None
        if self.warp and window > 0:
            from .flow_smoother import FlowAligner  # here: flow_smoother builds on this module

            self._aligner = FlowAligner(max_side)
        self._cuts = _CutDetector(scene_cut_threshold)
        self._buf: deque[_Held] = deque(maxlen=2 * window + 1)
        self._pending = 0  # frames received but not yet emitted
        self._next_key = 0
        self._like: Optional[Tensor] = None

    def _aligned(self, centre: _Held, other: _Held) -> Tensor:
        """``other``'s mask carried onto the centre frame; the centre's own mask where the flow is unsure."""
        if other.key == centre.key:
            return other.mask
        if self._aligner is None or other.thumb is None or centre.thumb is None or other.thumb.gray.shape != centre.thumb.gray.shape:
            return other.mask
        via = None
        if abs(other.key - centre.key) == 2:  # chained through the frame between: no DIS of its own
            mid = next((held for held in self._buf if held.key == (centre.key + other.key) // 2), None)
            if mid is not None and mid.thumb is not None and mid.thumb.gray.shape == centre.thumb.gray.shape:
                via = (mid.key, mid.thumb)
        warped, conf = self._aligner.align(other.mask, centre.thumb, other.thumb, (centre.key, other.key), via)
        return centre.mask + conf * (warped - centre.mask)

    def _filter(self) -> Tensor:
        centre = self._buf[self.window]
        aligned = [self._aligned(centre, held) for held in self._buf]  # 2k+1 of (1, 1, H, W)
        if self.mode == "median":
            return median_of(aligned)
        return torch.stack(aligned).mean(dim=0)

    def _add(self, held: _Held, out: list[Tensor]) -> None:
        if not self._buf:
            self._buf.extend([held] * self.window)  # pad the start by repeating the first frame
        self._buf.append(held)
        self._pending += 1
        if len(self._buf) == self._buf.maxlen:
            out.append(self._filter())
            self._pending -= 1
            self._forget_flows()

    def _forget_flows(self) -> None:
        if self._aligner is not None:
            self._aligner.forget({held.key for held in self._buf})

    def _drain(self, out: list[Tensor]) -> None:
        """Emit every held frame, padding the end by repeating the last one, and start afresh."""
        while self._pending > 0:
            self._buf.append(self._buf[-1])
            if len(self._buf) == self._buf.maxlen:
                out.append(self._filter())
                self._pending -= 1
        self._buf.clear()
        self._forget_flows()

    def push(self, alphas: Tensor, images: Optional[Tensor] = None) -> Tensor:
        """Add a batch (N, 1, H, W); returns the frames that are now complete (0..N+k, in order)."""
        _check_alphas(alphas)
        out: list[Tensor] = []
        last = self._buf[-1].mask if self._buf else None
        if last is not None and (last.shape[1:] != alphas.shape[1:] or last.device != alphas.device):
            logger.debug("mask size or device changed; look-ahead window restarted")
            self._drain(out)
        thumbs: list[Optional[Thumb]] = [None] * alphas.shape[0]
        if self._aligner is not None:
            if images is None:
                logger.debug("no frames given: look-ahead neighbours are not warped")
            else:
                thumbs = list(self._aligner.thumbnails(images))
        known = [t for t in thumbs if t is not None]
        flags = self._cuts.flags(images, alphas.shape[0], known if len(known) == alphas.shape[0] else None)
        for i, cut in enumerate(flags):
            if cut:
                logger.debug("scene cut detected; look-ahead window restarted")
                self._drain(out)
            # clone: hold one mask, not the whole batch
            self._add(_Held(alphas[i : i + 1].clone(), self._next_key, thumbs[i]), out)
            self._next_key += 1
        self._like = alphas[:0]
        return torch.cat(out) if out else _empty_like(self._like)

    __call__ = push

    def flush(self) -> Tensor:
        """Emit the frames still waiting for future neighbours (end of stream), then start afresh."""
        out: list[Tensor] = []
        if self._buf:
            self._drain(out)
        self._cuts.reset()
        return torch.cat(out) if out else _empty_like(self._like)

    def reset(self) -> None:
        """Drop all held frames and history without emitting them (call flush() first to keep them)."""
        self._buf.clear()
        self._forget_flows()
        self._pending = 0
        self._cuts.reset()


def _kinds() -> dict[str, type]:
    from .flow_smoother import FlowSmoother  # here: flow_smoother builds on this module

    return {"none": PassthroughSmoother, "ema": EmaSmoother, "lookahead": LookaheadSmoother, "flow": FlowSmoother}


def make_smoother(kind: SmootherKind, **opts: object) -> Smoother:
    """Build a smoother by name ("none", "ema", "lookahead", "flow") with its options, checked up front."""
    kinds = _kinds()
    cls = kinds.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ConfigError(f"unknown smoother {kind!r}; expected one of: {', '.join(kinds)}")
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for the {kind!r} smoother; accepted: {', '.join(accepted) or 'none'}"
        )
    return cls(**opts)  # type: ignore[no-any-return]

"""Live mode's mask carry: the newest model mask moved onto each displayed frame along optical flow.

The model is slower than the camera, so a displayed frame is composed with a mask computed on
an older frame (100-500 ms older on a CPU). ``MaskCarrier`` warps that mask onto the shown
frame along DIS flow on thumbnails (``birefvid.temporal.flow``).

DIS finds only 8-12 thumbnail pixels of motion from scratch, so flow straight from the shown
frame to the mask's frame loses a subject that moved further while the model ran. So, when the
caller names its frames (``key``), the carrier also links each shown frame to the one before
(DIS both ways, at half the thumbnail's resolution: the links only need to be roughly right)
and chains these links back to the mask's frame. The straight flows are then estimated
*starting from* the chains, which DIS refines wherever the motion went (the forward one at full
thumbnail resolution; its reverse, used only for the occlusion check, at half), and each pixel
finally takes whichever of the refined and the chained flow explains the shown frame better
(``pick_better_flow``).

Measured by ``scripts/bench_carry.py`` (the temporal benchmark's noisy generated clips, masks
delivered k frames late as in live mode, IoU x 100 of the shown frames): a fast subject keeps
57.9 instead of 29.7 at k = 5 and 47.9 instead of 16.4 at k = 8; a constant-speed subject and
a camera pan at k = 8 keep 93.9 and 93.2 instead of 71.2 and 48.7; slow and still clips stay
within 0.2 of the straight carry. Cost: ~1 ms more of one core a shown frame (7.4-8.2 against
6.0-7.1 ms a carry at 160x160 here); see docs/live.md for live mode's figures.
Without keys, or when the chain back to the mask's frame is broken (a frame not shown, a
reference older than ``history``), the straight flow from scratch is used, as before.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Hashable, NamedTuple, Optional, Union

import cv2
import numpy as np
from torch import Tensor

from .flow import (
    _MIN_SIDE,
    _check_dis_options,
    _describe,
    _pixel_grid,
    chain_flows,
    estimate_flow,
    flow_thumbnail,
    occlusion_aware_flow,
    warp_mask,
)

logger = logging.getLogger(__name__)

Mask = Union[np.ndarray, Tensor]

# How a pixel chooses between the refined straight flow and the raw chain: the reference
# thumbnail is warped by each and compared with the shown one (gray levels, both blurred by
# _SELECT_BLUR first so pixel noise does not decide, differences averaged over _SELECT_AREA);
# the chain wins fully when its error is lower by _SELECT_MARGIN / 2, and half when they tie.
# Picked once and checked on scripts/bench_carry.py's clips, not tuned further.
_SELECT_BLUR = 1.0
_SELECT_AREA = 2.0
_SELECT_MARGIN = 2.0


class _Shown(NamedTuple):
    """A displayed frame: its key, its thumbnail, and the flows linking it with the frame shown before it
    (``step`` on this frame's grid into that one, ``back`` on that one's grid into this; None: no link)."""

    key: Hashable
    thumb: np.ndarray
    step: Optional[np.ndarray]
    back: Optional[np.ndarray]


class _Chain(NamedTuple):
    """Chained flows between the reference frame ``ref`` and the frame ``last``: ``flow`` on ``last``'s grid
    into ``ref``, ``reverse`` on ``ref``'s grid into ``last`` (both None: ``last`` is the reference itself)."""

    ref: Hashable
    last: Hashable
    flow: Optional[np.ndarray]
    reverse: Optional[np.ndarray]

    def extended(self, shown: "_Shown") -> "Optional[_Chain]":
        """The chain one shown frame further; None when that frame has no link to the one before."""
        if shown.step is None or shown.back is None:
            return None
        if self.flow is None or self.reverse is None:
            return _Chain(self.ref, shown.key, shown.step, shown.back)
        return _Chain(self.ref, shown.key, chain_flows(shown.step, self.flow), chain_flows(self.reverse, shown.back))


class _Reference(NamedTuple):
    """The newest mask, the thumbnail of the frame it was computed on, and that frame's key."""

    thumb: np.ndarray
    mask: Mask
    key: Optional[Hashable]


def _remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    return cv2.remap(image, flow + _pixel_grid(*flow.shape[:2]), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def pick_better_flow(target: np.ndarray, source: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per pixel, ``first`` or ``second`` (flows on ``target``'s grid into ``source``), whichever warps
    ``source`` closer to ``target`` (gray thumbnails), blended where they do about equally well."""
    t = cv2.GaussianBlur(target.astype(np.float32), (0, 0), _SELECT_BLUR)
    s = cv2.GaussianBlur(source.astype(np.float32), (0, 0), _SELECT_BLUR)
    err_first = cv2.GaussianBlur(np.abs(t - _remap(s, first)), (0, 0), _SELECT_AREA)
    err_second = cv2.GaussianBlur(np.abs(t - _remap(s, second)), (0, 0), _SELECT_AREA)
    w = np.clip((err_first - err_second) / _SELECT_MARGIN + 0.5, 0.0, 1.0)[..., None]
    return first + w * (second - first)


class MaskCarrier:
    """Carries the newest model mask to each displayed frame along DIS flow (the live runner's helper).

    ``set_reference(image, mask, key)`` (model thread) stores a mask and, as a thumbnail, the
    frame it was computed on; ``carry(image, key)`` (display thread) returns that mask warped
    onto a shown frame, and ``observe(image, key)`` records a shown frame that needs no carry
    (its own mask is the newest). Keys name frames (the live runner uses capture times); with
    them, and every shown frame passed to ``carry`` or ``observe`` in order, flows are chained
    frame to frame back to the mask's frame so fast motion is followed (see the module doc).

    Per ``carry``: one thumbnail, one full-resolution warp and, with ``occlusions=True`` (the
    default), four DIS calls with keys or two without. With keys: the links to the frame before,
    both ways at ``coarse_scale`` (1: half the thumbnail's resolution, ~0.25 ms each at 160x90),
    and the straight flow from the chains, forward at ``finest_scale`` and its reverse at
    ``coarse_scale``. Without them (or with the chain broken): the straight flow from scratch and
    its reverse, both at ``finest_scale``. The reverse flow removes the ghost a moving subject
    leaves where it uncovered the background (see ``occlusion_aware_flow``). The straight flow
    runs from the new frame to the reference itself, so its errors do not accumulate as the
    chain's do.
    ``set_reference`` and ``carry`` may be called from different threads: the reference is
    swapped in one assignment, the shown frames' history is the display thread's alone, and
    DIS instances are per thread.
    """

    def __init__(
        self,
        max_side: int = 160,
        preset: str = "ultrafast",
        finest_scale: int = 0,
        occlusions: bool = True,
        history: int = 64,
        coarse_scale: int = 1,
    ) -> None:
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < _MIN_SIDE:
            raise ValueError(f"max_side must be an int >= {_MIN_SIDE}, got {max_side!r}")
        _check_dis_options(preset, finest_scale)
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"history must be an int >= 0 (shown frames kept for chaining; 0: off), got {history!r}")
        self.max_side = max_side
        self.preset = preset
        self.finest_scale = finest_scale
        self.occlusions = bool(occlusions)
        _check_dis_options(preset, coarse_scale)
        self.coarse_scale = coarse_scale
        self._ref: Optional[_Reference] = None
        self._shown: deque[_Shown] = deque(maxlen=history)
        self._chain: Optional[_Chain] = None

    def set_reference(self, image_rgb: Union[np.ndarray, Tensor], mask: Mask, key: Optional[Hashable] = None) -> None:
        """Remember ``mask`` and (as a thumbnail) the frame it was computed on, named ``key``; later carries start here."""
        if isinstance(mask, Tensor):
            if mask.ndim != 4 or mask.shape[1] != 1 or not mask.is_floating_point():
                raise ValueError(f"a torch mask must be a float (N, 1, H, W) tensor, got {_describe(mask)}")
        elif not isinstance(mask, np.ndarray) or mask.ndim != 2 or not np.issubdtype(mask.dtype, np.floating):
            raise ValueError(f"mask must be a numpy float (H, W) or torch float (N, 1, H, W), got {_describe(mask)}")
        self._ref = _Reference(flow_thumbnail(image_rgb, self.max_side), mask, key)

    def observe(self, image_rgb: Union[np.ndarray, Tensor], key: Hashable) -> None:
        """Record a shown frame that is not carried (the mask is its own), so the chain of frames stays unbroken."""
        self._remember(flow_thumbnail(image_rgb, self.max_side), key)

    def carry(self, image_rgb: Union[np.ndarray, Tensor], key: Optional[Hashable] = None) -> Optional[Mask]:
        """The reference mask warped onto ``image_rgb`` (same type and size as given); None before any reference.

        An identical thumbnail returns the stored mask itself. Thumbnails do not depend on
        resolution, so a frame of the same aspect at another size is carried as usual; one
        whose thumbnail differs in shape (the aspect changed) gets the mask back unwarped.
        """
        thumb = flow_thumbnail(image_rgb, self.max_side)
        if key is not None:
            self._remember(thumb, key)
        ref = self._ref
        if ref is None:
            return None
        if thumb.shape != ref.thumb.shape:
            logger.debug("frame shape changed since the reference mask; carried unwarped")
            return ref.mask
        if np.array_equal(thumb, ref.thumb):
            return ref.mask
        chain = self._chained(ref.key, key) if key is not None and ref.key is not None else None
        return warp_mask(ref.mask, self._straight(thumb, ref.thumb, chain))

    def reset(self) -> None:
        """Forget the reference and the shown frames (seek, reconnect, new stream): ``carry`` returns None until the next reference."""
        self._ref = None
        self._shown.clear()
        self._chain = None

    def _straight(self, thumb: np.ndarray, ref_thumb: np.ndarray, chain: "Optional[_Chain]") -> np.ndarray:
        """Flow from the shown frame straight to the reference, DIS refining the chained flows when there are
        some (else from scratch), and by default occlusion-aware."""
        guess = (None, None) if chain is None else (chain.flow, chain.reverse)
        flow = estimate_flow(thumb, ref_thumb, self.preset, self.finest_scale, initial=guess[0])
        if self.occlusions:
            # the reverse flow only says where the forward one is inconsistent: refined from a chain, the
            # coarse scale does (scripts/bench_carry.py: within 1.3 points of full scale, ~2 ms less a carry at 160x160)
            scale = self.finest_scale if chain is None else self.coarse_scale
            flow = occlusion_aware_flow(flow, estimate_flow(ref_thumb, thumb, self.preset, scale, initial=guess[1]))
        if chain is None or chain.flow is None or chain.reverse is None:
            return flow
        chained = occlusion_aware_flow(chain.flow, chain.reverse) if self.occlusions else chain.flow
        return pick_better_flow(thumb, ref_thumb, flow, chained)

    def _remember(self, thumb: np.ndarray, key: Hashable) -> None:
        """Add a shown frame to the history with its flow to the frame before it, and extend the chain."""
        if self._shown.maxlen == 0:
            return
        last = self._shown[-1] if self._shown else None
        if last is not None and last.key == key:
            return  # the same frame again (observed, then carried): nothing new
        step = back = None  # no link to the frame before: none shown yet, or the stream changed shape
        if last is not None and last.thumb.shape == thumb.shape:
            if np.array_equal(last.thumb, thumb):
                step = back = np.zeros(thumb.shape + (2,), np.float32)
            else:
                step = estimate_flow(thumb, last.thumb, self.preset, self.coarse_scale)
                back = estimate_flow(last.thumb, thumb, self.preset, self.coarse_scale)
        shown = _Shown(key, thumb, step, back)
        self._shown.append(shown)
        chain = self._chain
        if chain is not None and last is not None and chain.last == last.key:
            self._chain = chain.extended(shown)

    def _chained(self, ref_key: Hashable, key: Hashable) -> "Optional[_Chain]":
        """The flows chained frame to frame between the shown frame ``key`` and the frame ``ref_key``; None when a link is missing."""
        chain = self._chain
        if chain is None or chain.ref != ref_key or chain.last != key:
            chain = self._rebuild(ref_key, key)
            self._chain = chain
        if chain is None or chain.flow is None or chain.reverse is None:
            return None
        return chain

    def _rebuild(self, ref_key: Hashable, key: Hashable) -> Optional[_Chain]:
        keys = [shown.key for shown in self._shown]
        if ref_key not in keys or keys[-1] != key:
            return None
        chain: Optional[_Chain] = _Chain(ref_key, ref_key, None, None)
        for shown in list(self._shown)[keys.index(ref_key) + 1 :]:
            assert chain is not None
            chain = chain.extended(shown)
            if chain is None:
                return None
        return chain

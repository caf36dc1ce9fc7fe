"""Motion-compensated smoothing: history is carried along optical flow before it is blended.

A per-pixel filter (``ema``, an unaligned ``lookahead`` median) keeps its history where the
subject *was*; on a moving subject that history is wrong, and a motion gate that drops it
also drops the smoothing. Here the history is first carried onto the current frame along DIS
flow (``birefvid.temporal.flow``: thumbnails, CPU), and a per-pixel confidence decides how
much of it may be used:

* the flow's forward-backward consistency (``flow_confidence``), so occluded and uncovered
  pixels, and pixels where the flow failed, take the new mask;
* a no-motion test on colour thumbnails: DIS on noisy frames returns coherent flow of a pixel
  or more where nothing moves (worst on flat, muted backgrounds), and carrying a still mask
  along it makes its edges jitter. Where zero motion explains the frame as well as the flow
  (blurred colour difference), zero flow is used, trusted as far as the frames agree. On the
  benchmark's still clip this turned the flow smoother from 33 % less flicker into 67 %.

``FlowSmoother`` is the online (delay 0) smoother; ``FlowAligner`` is the shared helper that
also lets ``LookaheadSmoother(warp=True)`` carry its neighbours onto the centre frame.
Defaults come from ``scripts/bench_temporal.py`` (the shipped ``tiny`` model on generated
256-px clips with exact masks and per-frame noise sigma = 12).
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

import cv2
import numpy as np
import torch
from torch import Tensor

from ..compose.resample import resize, resize_uint8
from ..errors import ConfigError
from .flow import _check_dis_options, _pixel_grid, _thumb_size, chain_flows, estimate_flow, flow_confidence, warp_mask
from .smoothing import OnlineSmoother, _check_alphas, ema

logger = logging.getLogger(__name__)

_GRAY = (0.299, 0.587, 0.114)  # as flow_thumbnail (cv2.COLOR_RGB2GRAY weights)
_MIN_SIDE = 16  # DIS needs room for a couple of 8-px patches


class Thumb(NamedTuple):
    """A frame shrunk for flow: gray uint8 (h, w) for DIS, colour float32 (h, w, 3) in 0..255 for the motion test."""

    gray: np.ndarray
    color: np.ndarray


def batch_thumbnails(images: Tensor, max_side: int = 160) -> list[Thumb]:
    """Thumbnails (long side <= ``max_side``) of frames (N, 3, H, W), pooled on their device.

    Frames are uint8 or float in [0, 1], on any device; the batch is area-pooled where it is
    and copied to the host once. ``gray`` is the thumbnail ``flow_thumbnail`` makes of a frame.
    """
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a (N, 3, H, W) tensor of RGB frames, got {tuple(getattr(images, 'shape', ()))}")
    h, w = _thumb_size(images.shape[2], images.shape[3], max_side)  # below _MIN_SIDE only for frames that small
    if images.dtype == torch.uint8 and images.device.type == "cpu":
        # the bytes shrunk first (OpenCV's area average, rounded to whole levels): a float copy of a
        # 720p frame before shrinking cost ~4 ms on one core here, this ~0.3 ms
        small = resize_uint8(images, (h, w)).float()
    else:
        x = images.float() if images.dtype == torch.uint8 else images.float() * 255.0
        small = resize(x, (h, w), "area")  # OpenCV on the CPU: ~10x faster than F.interpolate there
    gray = (small * small.new_tensor(_GRAY).view(1, 3, 1, 1)).sum(1).round_().clamp_(0, 255).to(torch.uint8)
    grays, colors = gray.cpu().numpy(), small.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [Thumb(g, c) for g, c in zip(grays, colors)]


# The no-motion test (see FlowAligner), on colour thumbnails in 0..255 units, tuned on
# scripts/bench_temporal.py: blur before differencing so pixel noise averages out; the flow
# must explain the frame better than no motion by _MARGIN to be used; no motion is trusted
# fully where the frames differ by at most _STILL_TOL, not at all beyond twice that.
_BLUR = 1.0  # Gaussian sigma, thumbnail pixels
_MARGIN = 0.5
_STILL_TOL = 6.0


def _max_abs(d: np.ndarray) -> np.ndarray:
    """Max over the 3 channels of |d|: ``np.abs(d).max(-1)`` without numpy's slow reduce over 3 items."""
    d = np.abs(d)
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])


def _motion_or_still(to_c: np.ndarray, from_c: np.ndarray, flow: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flow, confidence) with the flow zeroed where no motion explains the frame as well, and that choice's confidence.

    ``to_c``/``from_c``: blurred colour thumbnails; ``flow`` on ``to``'s grid into ``from``,
    ``conf`` its forward-backward confidence. Where the flow does not beat no motion by
    ``_MARGIN`` (max over channels of the blurred absolute difference), the pixel takes zero
    flow with a confidence from how little the frames differ there.
    """
    warped = cv2.remap(from_c, flow + _pixel_grid(*flow.shape[:2]), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    still_err = _max_abs(to_c - from_c)
    flow_err = _max_abs(to_c - warped)
    use = np.clip((still_err - flow_err - _MARGIN) / _MARGIN, 0.0, 1.0)
    still_conf = np.clip(2.0 - still_err / _STILL_TOL, 0.0, 1.0)
    return flow * use[..., None], use * conf + (1.0 - use) * still_conf


class FlowAligner:
    """Carries a mask from one frame onto another along DIS flow, with a per-pixel confidence.

    ``align(mask, to_thumb, from_thumb)`` returns ``(warped, confidence)``, both (N, 1, H, W)
    on the mask's device: ``warped`` is the mask of the ``from`` frame carried onto the ``to``
    frame; ``confidence`` in [0, 1] says where that carry can be trusted (forward-backward
    consistency of the flow, or where zero motion is chosen instead, how well the frames
    agree; see the module doc), upsampled to the mask. Thumbnails come from ``thumbnails``
    (``max_side`` px on the long side; DIS ``preset`` and ``finest_scale`` as in
    ``estimate_flow``). Two DIS calls per pair of frames; with a ``key`` the pair is cached
    (both directions come from the same two calls), so a caller that aligns both ways
    (look-ahead) pays once; ``forget`` drops the cache. Identical thumbnails skip DIS.
    Cost per new pair at 160 px: two DIS calls (~1.5 ms each on one core) and a few
    thumbnail-sized remaps and blurs; the full-size warp runs on the mask's device.
    """

    def __init__(self, max_side: int = 160, preset: str = "ultrafast", finest_scale: int = 0) -> None:
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < _MIN_SIDE:
            raise ConfigError(f"flow max_side must be an int >= {_MIN_SIDE} (thumbnail pixels), got {max_side!r}")
        try:
            _check_dis_options(preset, finest_scale)
        except ValueError as exc:
            raise ConfigError(f"flow {exc}") from None
        self.max_side = max_side
        self.preset = preset
        self.finest_scale = finest_scale
        self._cache: dict[tuple[object, object], tuple[Optional[np.ndarray], np.ndarray]] = {}
        self._raw: dict[tuple[object, object], np.ndarray] = {}
        # each frame's blurred colour thumbnail, by its key: the look-ahead pairs a frame with four others
        self._blurred: dict[object, np.ndarray] = {}
        self._warned_small = False

    def thumbnails(self, images: Tensor) -> list[Thumb]:
        """This aligner's thumbnails of a batch of frames (see ``batch_thumbnails``)."""
        if min(images.shape[-2:]) < _MIN_SIDE and not self._warned_small:
            self._warned_small = True
            logger.warning("frames of %dx%d are too small for optical flow (under %d px a side): smoothed "
                           "without motion alignment", images.shape[-1], images.shape[-2], _MIN_SIDE)  # fmt: skip
        return batch_thumbnails(images, self.max_side)

    def _pair(self, to_thumb: Thumb, from_thumb: Thumb, key: Optional[tuple[object, object]], via: Optional[tuple[object, Thumb]] = None):
        """(flow on ``to``'s grid pointing into ``from`` or None for zero flow, confidence on ``to``'s grid).

        With ``via`` (the key and thumbnail of a frame between the two) and a ``key``, the flows
        both ways are chained through that frame (``chain_flows``) from the pairs to and from it, each
        computed and cached once, instead of estimated by DIS: the look-ahead's flows two frames
        apart, which halves its DIS calls (4 -> 2 a frame). The consistency check and the
        no-motion test then run on the chained flows as on estimated ones.
        """
        if key is not None and key in self._cache:
            return self._cache[key]
        if np.array_equal(to_thumb.gray, from_thumb.gray):
            ones = np.ones(to_thumb.gray.shape, np.float32)
            result, reverse = (None, ones), (None, ones)
        elif min(to_thumb.gray.shape) < _MIN_SIDE:
            # frames too small for DIS (under 16 px a side): no motion, trusted as far as the frames agree
            none = np.zeros(to_thumb.gray.shape, np.float32)
            zero = np.zeros((*to_thumb.gray.shape, 2), np.float32)
            to_c, from_c = to_thumb.color, from_thumb.color
            (_, conf), (_, back) = _motion_or_still(to_c, from_c, zero, none), _motion_or_still(from_c, to_c, zero, none)
            result, reverse = (None, conf), (None, back)
        else:
            if via is not None and key is not None:
                self._pair(to_thumb, via[1], (key[0], via[0]))
                self._pair(via[1], from_thumb, (via[0], key[1]))
            chained = via is not None and key is not None and all(
                k in self._raw for k in ((key[0], via[0]), (via[0], key[1]), (key[1], via[0]), (via[0], key[0])))
            if chained:
                fwd = chain_flows(self._raw[(key[0], via[0])], self._raw[(via[0], key[1])])
                bwd = chain_flows(self._raw[(key[1], via[0])], self._raw[(via[0], key[0])])
            else:
                fwd = estimate_flow(to_thumb.gray, from_thumb.gray, self.preset, self.finest_scale)
                bwd = estimate_flow(from_thumb.gray, to_thumb.gray, self.preset, self.finest_scale)
                if key is not None:
                    self._raw[key], self._raw[(key[1], key[0])] = fwd, bwd
            to_c = self._blur(to_thumb, None if key is None else key[0])
            from_c = self._blur(from_thumb, None if key is None else key[1])
            result = _motion_or_still(to_c, from_c, fwd, flow_confidence(fwd, bwd))
            reverse = _motion_or_still(from_c, to_c, bwd, flow_confidence(bwd, fwd))
        if key is not None:
            self._cache[key] = result
            self._cache[(key[1], key[0])] = reverse
        return result

    def _blur(self, thumb: Thumb, key: object) -> np.ndarray:
        """``thumb``'s colour blurred for the no-motion test, once per keyed frame (the look-ahead blurred
        each frame's four times: 0.25 -> 0.06 ms a frame at 160x90 on one core here, the same values)."""
        if key is None:
            return cv2.GaussianBlur(thumb.color, (0, 0), _BLUR)
        blurred = self._blurred.get(key)
        if blurred is None:
            blurred = self._blurred[key] = cv2.GaussianBlur(thumb.color, (0, 0), _BLUR)
        return blurred

    def align(
        self, mask: Tensor, to_thumb: Thumb, from_thumb: Thumb, key: Optional[tuple[object, object]] = None,
        via: Optional[tuple[object, Thumb]] = None,
    ) -> tuple[Tensor, Tensor]:
        """``mask`` (of the ``from`` frame) warped onto the ``to`` frame, and the per-pixel confidence."""
        flow, conf = self._pair(to_thumb, from_thumb, key, via)
        warped = mask if flow is None else warp_mask(mask, flow)
        c = torch.from_numpy(conf).to(device=mask.device, dtype=mask.dtype)[None, None]
        if tuple(c.shape[2:]) != tuple(mask.shape[2:]):
            c = resize(c, tuple(mask.shape[2:]), "bilinear")  # OpenCV on the CPU (~4x faster than F.interpolate there)
        return warped, c

    def forget(self, keep: Optional[set[object]] = None) -> None:
        """Drop cached flows, except pairs whose both keys are in ``keep``."""
        if not keep:
            self._cache.clear()
            self._raw.clear()
            self._blurred.clear()
            return
        self._cache = {k: v for k, v in self._cache.items() if k[0] in keep and k[1] in keep}
        self._raw = {k: v for k, v in self._raw.items() if k[0] in keep and k[1] in keep}
        self._blurred = {k: v for k, v in self._blurred.items() if k in keep}


class FlowSmoother(OnlineSmoother):
    """Online, zero-delay smoother that carries its history along optical flow before the blend.

    Per frame: the previous *smoothed* mask is carried onto the new frame (``FlowAligner``:
    DIS on thumbnails of at most ``max_side`` px, two calls per frame), then blended as
    ``ema`` does, each pixel keeping ``weight * confidence * motion gate`` of its history:
    ``confidence`` (0..1, see ``FlowAligner``) gives occlusions, uncovered background and
    failed flow the new mask; the motion gate (``motion_threshold``, see ``ema``) drops what
    the carry did not explain. Scene cuts (``scene_cut_threshold``, as ``EmaSmoother``; on by
    default here, since this smoother always has the frames) and ``reset()`` start afresh:
    the next mask passes through unchanged.

    It needs the frames: ``push(alphas, images)`` with ``images`` the (N, 3, H, W) frames the
    masks belong to (uint8, or float in [0, 1]; any size of the masks' aspect, e.g. full
    frames with inference-size masks). Without them it raises ``ValueError`` rather than
    quietly smoothing without motion compensation (use ``ema`` where there are no frames).
    Masks stay on their device; only thumbnails go to the CPU.

    Defaults, from ``scripts/bench_temporal.py`` (weight 0.5-0.8 x gate 0.3/0.5/0.8/1.0 and
    flow settings searched): ``weight`` 0.7 with ``motion_threshold`` 0.5 cut the shimmer a
    viewer sees (flicker measured along the true motion) by 27 % on a subject moving 4 px a
    frame, 46 % on a camera pan and 67 % on a still shot, with mean IoU up 0.17 points and
    no clip worse than raw; gate 0.8 or weight 0.8 lose up to 0.4 IoU points on a slowly
    rotating subject for a few points more, gate 0.3 gives back a third of the gain. Thumbnail
    160 px, DIS ``ultrafast`` at ``finest_scale`` 0 beat smaller thumbnails and the slower
    presets; 192/256 px thumbnails smooth still shots less (the flow gets noisier).
    """

    def __init__(
        self,
        weight: float = 0.7,
        motion_threshold: Optional[float] = 0.5,
        scene_cut_threshold: Optional[float] = 0.15,
        max_side: int = 160,
        preset: str = "ultrafast",
        finest_scale: int = 0,
    ) -> None:
        self._blend_options("flow", weight, motion_threshold, scene_cut_threshold)
        self._aligner = FlowAligner(max_side, preset, finest_scale)
        self._thumb: Optional[Thumb] = None

    def push(self, alphas: Tensor, images: Optional[Tensor] = None) -> Tensor:
        """Smooth a batch (N, 1, H, W) of the frames ``images`` (N, 3, H', W'); returns N frames."""
        _check_alphas(alphas)
        if images is None:
            raise ValueError(
                "the flow smoother follows motion between frames, so it needs them: push(alphas, images) "
                "with the frames the masks belong to (use the 'ema' smoother where there are none)"
            )
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.shape[0] != alphas.shape[0]:
            raise ValueError(f"got {images.shape[0]} images for {alphas.shape[0]} alphas; pass the frames the masks belong to")
        if self._state is not None and (self._state.shape[1:] != alphas.shape[1:] or self._state.device != alphas.device):
            logger.debug("mask size or device changed; flow smoother history reset")
            self._state = None
        thumbs = self._aligner.thumbnails(images)
        flags = self._cuts.flags(images, alphas.shape[0], thumbs)
        out = []
        for i, (cut, thumb) in enumerate(zip(flags, thumbs)):
            current = alphas[i : i + 1]
            if cut:
                logger.debug("scene cut detected; flow smoother history reset")
            if cut or self._state is None or self._thumb is None or self._thumb.gray.shape != thumb.gray.shape:
                self._state = current
            else:
                warped, conf = self._aligner.align(self._state, thumb, self._thumb)
                self._state = ema(warped, current, self.weight * conf, self.motion_threshold)
            self._thumb = thumb
            out.append(self._state)
        return self._emit(out, alphas)

    def reset(self) -> None:
        """Forget the history (scene cut, seek, reconnect): the next frame passes through as is."""
        self._state = None
        self._thumb = None
        self._cuts.reset()

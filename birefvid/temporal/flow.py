"""Cheap optical flow that carries a mask from the frame it was computed on to a newer frame.

In live mode the model is slower than the camera, so each displayed frame is composed with a
mask computed on an older frame; warping that mask along optical flow keeps a moving subject
from being cut by it. Flow is OpenCV's DIS (dense inverse search) on small gray thumbnails
(at most 160 px on the long side by default): ~1-2 ms per pair on one CPU core.

Flow convention (OpenCV's, used by every function here)::

    flow = estimate_flow(a, b)        # (h, w, 2) float32 on a's pixel grid
    a[y, x] ~ b[y + flow[y, x, 1], x + flow[y, x, 0]]

so ``flow[y, x] = (dx, dy)`` says where pixel (x, y) of ``a`` went in ``b``. ``warp_mask``
samples backwards along such a flow: ``out[p] = mask[p + flow[p]]`` (bilinear, border
replicate), so its output lies on the flow's own grid (``a``) and the mask must belong to
the frame the flow points into (``b``). To carry a mask computed on frame A to frame B::

    warp_mask(mask_A, estimate_flow(thumb_B, thumb_A))

Flows live at thumbnail resolution, in thumbnail pixels; ``warp_mask`` rescales them to the
mask's size. ``flow_confidence(forward, backward)`` scores ``forward`` on its own grid, with
``backward`` the flow of the opposite direction (Sundaram et al. 2010 consistency check).
Backward warping alone copies the old mask into the background a moving subject uncovers
(a ghost as wide as the motion); ``occlusion_aware_flow(flow, reverse)`` uses the reverse
flow there instead, and ``MaskCarrier`` (``birefvid.temporal.carry``) does so by default.

Range: DIS at these sizes finds motion up to roughly 8-12 thumbnail pixels (5-8% of the
frame width) from scratch, on textured content; beyond that, or on flat regions, a mask
carried along it can be as wrong as the stale one. Given a first guess (``estimate_flow``'s
``initial``, e.g. flows chained frame to frame with ``chain_flows``) it refines motion of any
size, which is how ``MaskCarrier`` follows fast subjects.

GPU: there is no cheap dense flow in torch or kornia (kornia 0.9 has none; torchvision's
RAFT needs downloaded weights and costs far more than DIS on a thumbnail), so flow is always
estimated on the CPU. Only the thumbnail (``flow_thumbnail`` of a torch frame is pooled on
its own device before the small copy to the host) and the full-resolution warp
(``warp_mask`` of a torch mask, via ``grid_sample``) run on the mask's device.
"""

from __future__ import annotations

import functools
import threading
from typing import Optional, TypeVar, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..compose.resample import shrink_area

MaskT = TypeVar("MaskT", np.ndarray, Tensor)

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_MIN_SIDE = 16  # DIS needs room for at least a couple of 8-px patches
# gradient-descent steps per patch for "ultrafast" (its preset has 12): on 160-px thumbnails 8 cost
# ~8% less per DIS call (1.87 -> 1.72 ms on one core here), and scripts/bench_temporal.py printed the
# same figures to +-1 point (mc-flicker cuts: look-ahead 37/52/69 -> 38/53/70 %, flow 30/53/67 -> 29/54/68 %)
_ULTRAFAST_ITERATIONS = 8
_GRAY = (0.299, 0.587, 0.114)  # cv2.COLOR_RGB2GRAY weights
_local = threading.local()


def _describe(x: object) -> str:
    return f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"


def _thumb_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(h, w))  # never upscale: a small frame is its own thumbnail
    scale = min(1.0, max(scale, _MIN_SIDE / min(h, w)))  # a long strip (4000x30) keeps DIS's minimum across
    return max(1, round(h * scale)), max(1, round(w * scale))


def flow_thumbnail(image_rgb: Union[np.ndarray, Tensor], max_side: int = 160) -> np.ndarray:
    """Shrink an RGB frame to a uint8 gray thumbnail (long side <= ``max_side``, aspect kept) for DIS.

    ``image_rgb`` is a numpy (H, W, 3) uint8 RGB frame (resized with INTER_AREA), or a torch
    (3, H, W) / (1, 3, H, W) uint8 frame on any device (area-pooled there, then copied small).
    """
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < _MIN_SIDE:
        raise ValueError(f"max_side must be an int >= {_MIN_SIDE}, got {max_side!r}")
    if isinstance(image_rgb, Tensor):
        x = image_rgb[0] if image_rgb.ndim == 4 and image_rgb.shape[0] == 1 else image_rgb
        if x.ndim != 3 or x.shape[0] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"a torch frame must be uint8 (3, H, W) or (1, 3, H, W) RGB, got {_describe(image_rgb)}")
        if x.device.type == "cpu":  # OpenCV on the bytes (a view when the frame is channel-last): no float copy
            return flow_thumbnail(np.ascontiguousarray(x.permute(1, 2, 0).numpy()), max_side)
        h, w = _thumb_size(x.shape[1], x.shape[2], max_side)
        small = F.interpolate(x[None].float(), size=(h, w), mode="area")[0]
        gray = (small * small.new_tensor(_GRAY).view(3, 1, 1)).sum(0)
        return gray.round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    img = image_rgb
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image_rgb must be a uint8 (H, W, 3) RGB array, got {_describe(image_rgb)}")
    h, w = _thumb_size(img.shape[0], img.shape[1], max_side)
    # exact halvings first (OpenCV's SIMD path): 1080p to 160x90 1.6 -> ~0.5 ms on one core, and the
    # same thumbnail as batch_thumbnails makes (resize_uint8) for the file smoothers
    small = img if (h, w) == img.shape[:2] else shrink_area(img, (h, w))
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def _dis(preset: str, finest_scale: int, guided: bool = False) -> "cv2.DISOpticalFlow":
    """This thread's DIS instance for (preset, finest_scale), created once since creating one costs time;
    ``guided``: the instance for calls given an initial flow. OpenCV 4.14's DIS keeps state from a call
    with an initial flow that changes later calls without one (by up to a pixel on a test pair; on
    scripts/bench_carry.py's clips into flows of 10^5 px, then a crash), so the two kinds of call never
    share an instance."""
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    key = (preset, finest_scale, guided)
    inst = cache.get(key)
    if inst is None:
        inst = cv2.DISOpticalFlow_create(_PRESETS[preset])
        inst.setFinestScale(finest_scale)
        if preset == "ultrafast":
            inst.setGradientDescentIterations(_ULTRAFAST_ITERATIONS)
        cache[key] = inst
    return inst


def _check_gray(name: str, img: object) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 (h, w) gray image (see flow_thumbnail), got {_describe(img)}")
    if min(img.shape) < _MIN_SIDE:
        raise ValueError(f"{name} is {img.shape[1]}x{img.shape[0]}; DIS needs at least {_MIN_SIDE} px on each side")
    return img


def _check_dis_options(preset: str, finest_scale: int) -> None:
    if preset not in _PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; expected one of: {', '.join(_PRESETS)}")
    if isinstance(finest_scale, bool) or not isinstance(finest_scale, int) or not 0 <= finest_scale <= 4:
        raise ValueError(f"finest_scale must be an int in 0..4, got {finest_scale!r}")


def estimate_flow(
    prev_gray: np.ndarray,
    next_gray: np.ndarray,
    preset: str = "ultrafast",
    finest_scale: int = 0,
    initial: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Dense DIS flow (h, w, 2) float32 on ``prev_gray``'s grid: prev[p] ~ next[p + flow[p]] (see module doc).

    ``finest_scale`` overrides the preset's: presets are tuned for full frames, where scale 2
    (1/4 resolution) is plenty, but on a 160-px thumbnail it leaves a 40-px flow field that
    cannot follow a subject's edge; 0 (full thumbnail resolution) costs ~1.5 ms at 160x120.
    ``initial`` (the same shape as the result) is a first guess DIS refines, e.g. flows chained
    frame to frame: it follows motion far beyond the 8-12 px that DIS finds from zero.
    """
    _check_dis_options(preset, finest_scale)
    a, b = _check_gray("prev_gray", prev_gray), _check_gray("next_gray", next_gray)
    if a.shape != b.shape:
        raise ValueError(f"prev_gray and next_gray must have the same size, got {a.shape} and {b.shape}")
    if initial is None:
        return _dis(preset, finest_scale).calc(a, b, None)
    guess = _check_flow(initial)
    if guess.shape[:2] != a.shape:
        raise ValueError(f"initial flow is {guess.shape[1]}x{guess.shape[0]}, the images {a.shape[1]}x{a.shape[0]}")
    return _dis(preset, finest_scale, guided=True).calc(a, b, guess.copy())  # DIS starts from the flow it is given and overwrites it


def chain_flows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The flow a -> c from a -> b (``first``, on a's grid) and b -> c (``second``, on b's grid):
    ``first(p) + second(p + first(p))``, ``second`` sampled bilinearly (edges replicated)."""
    h, w = first.shape[:2]
    at = first + _pixel_grid(h, w)
    return first + cv2.remap(second, at, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _check_flow(flow: object) -> np.ndarray:
    if isinstance(flow, Tensor):
        flow = flow.detach().cpu().numpy()
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2 or flow.dtype.kind != "f":
        raise ValueError(f"flow must be a float (h, w, 2) array of (dx, dy) per pixel, got {_describe(flow)}")
    return flow.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 of each pixel's own (x, y): the identity map for cv2.remap (cached per size)."""
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0] = np.arange(w, dtype=np.float32)[None, :]
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def _warp_numpy(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.floating):
        raise ValueError(f"a numpy mask must be a float (H, W) array, got {_describe(mask)}")
    H, W = mask.shape
    h, w = flow.shape[:2]
    scaled = flow * np.array([W / w, H / h], np.float32)
    if (h, w) != (H, W):
        scaled = cv2.resize(scaled, (W, H), interpolation=cv2.INTER_LINEAR)
    coords = scaled + _pixel_grid(H, W)
    src = mask.astype(np.float32, copy=False)
    out = cv2.remap(src, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.astype(mask.dtype, copy=False)


def _warp_torch(mask: Tensor, flow: np.ndarray) -> Tensor:
    if mask.ndim != 4 or mask.shape[1] != 1 or not mask.is_floating_point():
        raise ValueError(f"a torch mask must be a float (N, 1, H, W) tensor, got {_describe(mask)}")
    N, _, H, W = mask.shape
    h, w = flow.shape[:2]
    if mask.device.type == "cpu" and not mask.requires_grad:
        # OpenCV's remap on the CPU: 5x faster than grid_sample for a 512² mask (1.0 against 5.0 ms
        # on one core here), and the look-ahead warps four masks a frame. Its fixed-point weights
        # (1/32 px) move a warped value by < 0.025 (mean 0.003) even on a noise mask.
        items = [_warp_numpy(np.ascontiguousarray(item[0].numpy(), np.float32), flow) for item in mask.detach().float()]
        return torch.from_numpy(np.stack(items)).unsqueeze(1).to(mask.dtype)
    return _warp_grid_sample(mask, flow)


def _warp_grid_sample(mask: Tensor, flow: np.ndarray) -> Tensor:
    """``warp_mask`` of a (N, 1, H, W) tensor by ``grid_sample``, on the mask's device."""
    N, _, H, W = mask.shape
    h, w = flow.shape[:2]
    # In grid_sample's normalised coordinates (align_corners=False) a shift of f thumbnail
    # pixels is 2 f / w whatever the output size, so scale before upsampling (cheaper).
    norm = torch.from_numpy(flow).to(device=mask.device, dtype=torch.float32)
    norm = (norm * norm.new_tensor([2.0 / w, 2.0 / h])).permute(2, 0, 1)[None]
    if (h, w) != (H, W):
        norm = F.interpolate(norm, size=(H, W), mode="bilinear", align_corners=False)
    xs = (torch.arange(W, device=mask.device, dtype=torch.float32) * 2 + 1) / W - 1
    ys = (torch.arange(H, device=mask.device, dtype=torch.float32) * 2 + 1) / H - 1
    grid = norm.permute(0, 2, 3, 1)  # (1, H, W, 2) as (x, y)
    grid = grid + torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    grid = grid.expand(N, H, W, 2)
    out = F.grid_sample(mask.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(mask.dtype)


def warp_mask(mask: MaskT, flow: Union[np.ndarray, Tensor]) -> MaskT:
    """Sample ``mask`` at p + flow[p] so a mask of the flow's target frame lands on the flow's own grid.

    ``mask``: numpy float (H, W) (cv2.remap) or torch float (N, 1, H, W) on any device
    (grid_sample; the same flow for every item). ``flow``: (h, w, 2) at any resolution, in
    pixels of that resolution (a thumbnail's flow), scaled here to the mask's size. Bilinear,
    border replicate. Carry A's mask to B with ``warp_mask(mask_A, estimate_flow(B, A))``.
    """
    f = _check_flow(flow)
    if isinstance(mask, Tensor):
        return _warp_torch(mask, f)
    if isinstance(mask, np.ndarray):
        return _warp_numpy(mask, f)
    raise ValueError(f"mask must be a numpy (H, W) or torch (N, 1, H, W) float array, got {_describe(mask)}")


def _sq_norm(v: np.ndarray) -> np.ndarray:
    """|v|^2 of (h, w, 2) vectors: the same numbers as ``(v ** 2).sum(-1)``, without numpy's slow reduce over 2 items."""
    return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]


def flow_confidence(forward: np.ndarray, backward: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Per-pixel trust in ``forward`` (on its own grid) from forward-backward consistency, in [0, 1].

    ``forward`` maps grid G to the other frame, ``backward`` maps the other frame back to G
    (e.g. ``estimate_flow(B, A)`` and ``estimate_flow(A, B)`` for confidence on B). With
    d = forward[p] + backward[p + forward[p]], the tolerance is that of Sundaram et al. (2010),
    t = alpha (|forward|^2 + |backward(p + forward)|^2) + beta (in squared pixels of the flow's
    grid); confidence is 1 for |d|^2 <= t, falling linearly to 0 at |d|^2 >= 2t. Pixels whose
    flow leaves the frame have no counterpart and get 0. Occluded and disoccluded pixels fail
    the check, so a flow smoother can take the new mask there instead of a warped old one.
    """
    fw, bw = _check_flow(forward), _check_flow(backward)
    if fw.shape != bw.shape:
        raise ValueError(f"forward and backward flows must have the same shape, got {fw.shape} and {bw.shape}")
    if alpha < 0 or beta <= 0:
        raise ValueError(f"alpha must be >= 0 and beta > 0, got alpha={alpha}, beta={beta}")
    coords = fw + _pixel_grid(*fw.shape[:2])
    bw_at = cv2.remap(bw, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = _sq_norm(fw + bw_at)
    tol = alpha * (_sq_norm(fw) + _sq_norm(bw_at)) + beta
    conf = np.clip(2.0 - err / tol, 0.0, 1.0)
    h, w = fw.shape[:2]
    x, y = coords[..., 0], coords[..., 1]
    inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
    return np.where(inside, conf, 0.0).astype(np.float32)


def occlusion_aware_flow(flow: np.ndarray, reverse: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """``flow`` (target -> source, for ``warp_mask``) with pixels failing the check against ``reverse`` set to -reverse.

    Backward warping alone leaves a ghost where a moving subject uncovered the background:
    the background's flow there points at where the subject *was*, so the old mask is copied
    back in. ``reverse`` (source -> target) at such a pixel holds the motion of the subject
    that stood on it in the source frame; -reverse samples where that subject came from,
    i.e. background. Blended by ``flow_confidence``, so consistent pixels keep ``flow``.
    """
    fw, bw = _check_flow(flow), _check_flow(reverse)
    conf = flow_confidence(fw, bw, alpha, beta)[..., None]
    return conf * fw - (1.0 - conf) * bw

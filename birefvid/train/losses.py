"""BiRefNet's training objective, written from the paper's description (Zheng et al., 2024).

The paper trains with ``L = λ1·BCE + λ2·IoU + λ3·SSIM (+ λ4·CE)`` with λ1=30, λ2=0.5, λ3=10
(and λ4=5 for a category-classification head we do not train: our data have no class labels).
We keep those pixel weights. BCE is per-pixel, IoU covers the region and SSIM the local
structure (edges). The same pixel loss supervises the coarse multi-stage outputs, upsampled to
the label size, at a lower weight (``stage`` = 0.3 each) so the final output dominates. The
outward-reference (gradient) heads are supervised with BCE between the sigmoid of their
upsampled prediction and the sigmoid of their gradient label, as the paper's auxiliary gradient
supervision; we weight it 1.0 per level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F


class TrainOutputLike(Protocol):
    """What the objective reads from a training-mode forward (``birefvid.models.TrainOutput``)."""

    logits: torch.Tensor
    stage_logits: Sequence[torch.Tensor]
    gradient_logits: Sequence[torch.Tensor]
    gradient_labels: Sequence[torch.Tensor]


@dataclass(frozen=True)
class LossWeights:
    """Weights of each loss term; the defaults are the paper's pixel weights (see module doc)."""

    bce: float = 30.0
    iou: float = 0.5
    ssim: float = 10.0
    stage: float = 0.3  # each multi-stage output, relative to the final one (1.0)
    gradient: float = 1.0  # each gradient-referring head


def iou_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft IoU loss ``1 - |P∩G| / |P∪G|`` per image, averaged: rewards whole-region overlap."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    union = (p + target - p * target).sum(dim=(1, 2, 3))
    return (1.0 - (inter + eps) / (union + eps)).mean()


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """A normalized 1-D Gaussian (size,) on ``like``'s device and dtype."""
    x = torch.arange(size, device=like.device, dtype=like.dtype) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two (B, 1, H, W) maps in [0, 1], with a separable Gaussian window."""
    c1, c2 = 0.01**2, 0.03**2
    g = _gaussian_window(window, sigma, a)
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)  # all five local moments in one pass
    pad = window // 2
    stack = F.pad(stack, (pad, pad, pad, pad), mode="replicate")
    stack = F.conv2d(stack, g.view(1, 1, 1, -1).expand(5, 1, 1, window), groups=5)
    stack = F.conv2d(stack, g.view(1, 1, -1, 1).expand(5, 1, window, 1), groups=5)
    mu_a, mu_b, aa, bb, ab = stack.unbind(dim=1)
    var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return (num / den).mean()


def ssim_loss(logits: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """``1 - SSIM`` between the predicted probability and the label: rewards local structure."""
    return 1.0 - ssim(torch.sigmoid(logits), target, window)


def pixel_loss(logits: torch.Tensor, target: torch.Tensor, weights: LossWeights = LossWeights()) -> torch.Tensor:
    """Weighted BCE + IoU + SSIM of one prediction, upsampled to the label size if coarser."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    loss = weights.bce * F.binary_cross_entropy_with_logits(logits, target)
    if weights.iou:
        loss = loss + weights.iou * iou_loss(logits, target)
    if weights.ssim:
        loss = loss + weights.ssim * ssim_loss(logits, target)
    return loss


def gradient_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """BCE between sigmoid(gradient prediction upsampled to the label) and sigmoid(gradient label)."""
    if pred.shape[-2:] != label.shape[-2:]:
        pred = F.interpolate(pred, size=label.shape[-2:], mode="bilinear", align_corners=False)
    # BCE(sigmoid(x), y) computed from logits for stability; the target is a soft probability.
    return F.binary_cross_entropy_with_logits(pred, torch.sigmoid(label))


def birefnet_loss(
    out: TrainOutputLike, target: torch.Tensor, weights: LossWeights = LossWeights()
) -> tuple[torch.Tensor, dict[str, float]]:
    """The full objective in float32: (total loss, its parts as floats for logging)."""
    target = target.float()
    with torch.autocast(device_type=target.device.type, enabled=False):
        final = pixel_loss(out.logits.float(), target, weights)
        stages = sum((pixel_loss(s.float(), target, weights) for s in out.stage_logits), torch.zeros(()).to(target))
        grads = sum(
            (gradient_loss(p.float(), lab.float()) for p, lab in zip(out.gradient_logits, out.gradient_labels)),
            torch.zeros(()).to(target),
        )
        total = final + weights.stage * stages + weights.gradient * grads
    parts = {"final": float(final.detach()), "stages": float(stages.detach()), "gradient": float(grads.detach())}
    return total, parts

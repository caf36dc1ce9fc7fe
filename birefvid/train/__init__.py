"""Training BiRefNet: the paper's objective, a resumable trainer and weight export."""

from birefvid.train.checkpoints import load_checkpoint, save_checkpoint, save_weights
from birefvid.train.losses import LossWeights, birefnet_loss, gradient_loss, iou_loss, pixel_loss, ssim_loss
from birefvid.train.loop import Precision, TrainProgress, TrainResult, Validation, lr_factor, train, validate

__all__ = [
    "LossWeights",
    "Precision",
    "TrainProgress",
    "TrainResult",
    "birefnet_loss",
    "gradient_loss",
    "iou_loss",
    "load_checkpoint",
    "lr_factor",
    "pixel_loss",
    "save_checkpoint",
    "save_weights",
    "ssim_loss",
    "train",
    "validate",
    "Validation",
]

"""Training data: procedural figure/ground scenes and clips, and DIS5K/DUTS-style folders."""

from birefvid.data._tensors import IMAGENET_MEAN, IMAGENET_STD, to_sample
from birefvid.data.folders import FolderDataset, scan_pairs
from birefvid.data.scenes import SceneDataset, make_clip, make_scene

__all__ = [
    "FolderDataset",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SceneDataset",
    "make_clip",
    "make_scene",
    "scan_pairs",
    "to_sample",
]

"""``birefvid bench``: model-only speed against the eager fp32 reference, and the whole pipeline, in one run."""

from .clip import write_scene_clip
from .model import measure_model
from .pipeline import measure_pipeline

__all__ = ["measure_model", "measure_pipeline", "write_scene_clip"]

"""Packaging: every subpackage is installed, the cards ship, and the public API is what we document."""

from __future__ import annotations

from pathlib import Path

import pytest

import birefvid

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "birefvid").rglob("__init__.py")}
    assert on_disk | {"birefvid.configs"} == listed


def test_model_cards_and_tiny_weights_ship_with_the_package():
    from birefvid.models.registry import list_models

    cards = list_models()
    assert "tiny" in cards and cards["tiny"].package_file
    assert (ROOT / "birefvid" / "assets" / cards["tiny"].package_file).is_file()


def test_public_api_surface():
    assert set(birefvid.__all__) >= {"BiRefNet", "Segmenter", "BirefvidError", "SourceError", "SinkError", "ConfigError", "WeightsError"}
    for name in birefvid.__all__:
        assert getattr(birefvid, name) is not None
    from birefvid.api import process_video

    assert callable(process_video)
    assert issubclass(birefvid.SourceError, OSError) and issubclass(birefvid.ConfigError, ValueError)

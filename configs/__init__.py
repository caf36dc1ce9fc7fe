"""Data, not code: model variant cards (``models/*.json``) shipped inside the package as ``birefvid.configs``."""

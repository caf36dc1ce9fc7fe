"""What a ``--model`` value or a ``models --download`` name stands for: a card, a Hugging Face repo, or a local file.

Apart from ``weights.py`` (which imports torch to read weights) so that ``birefvid models --download`` refuses a
mistyped name, listing the known ones, at once: it took 1.5 s of torch's import to say so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..errors import WeightsNotFoundError
from .registry import ModelCard

WEIGHTS_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")  # a --model value with one of these is a file

# what a Hugging Face snapshot folder (`hf download --local-dir`, a git clone) keeps its weights in, in order of preference
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth")

HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+")  # `owner/name`, as `--model` takes a Hugging Face repo


def local_checkpoint(model: Optional[str] = None, weights: Optional[str | Path] = None) -> Optional[Path]:
    """The local file or snapshot folder ``load_pretrained`` would read for these, or None for a published
    model (a card, a Hugging Face repo)."""
    if weights is not None:
        return Path(weights)
    if model is None:
        return None
    from .registry import list_models

    path = Path(model)
    if path.is_file() or path.suffix.lower() in WEIGHTS_FILE_SUFFIXES:
        return path
    if path.is_dir() and model.lower() not in {k.lower() for k in list_models()}:
        return path
    return None


def weights_in_folder(folder: Path) -> Path:
    """The checkpoint in a Hugging Face snapshot folder (config.json + model.safetensors, as `hf download
    --local-dir` or a git clone leaves it), or the folder's only checkpoint file; else a WeightsNotFoundError."""
    for name in FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WEIGHTS_FILE_SUFFIXES)
    if len(found) == 1:
        return found[0]
    if found:
        raise WeightsNotFoundError(f"{folder} holds {len(found)} checkpoints ({', '.join(p.name for p in found[:4])}); name one of them")
    raise WeightsNotFoundError(f"no weights in folder {folder}: expected {' or '.join(FOLDER_WEIGHTS[:2])} (a Hugging Face snapshot) or one .pth/.safetensors file")


def download_target(name: str) -> ModelCard | str | Path:
    """What ``birefvid models --download NAME`` fetches: the card called ``name`` (case-insensitive), the card of a
    published variant named by its repo, or any other Hugging Face repo ``owner/name`` (its ``model.safetensors``, as
    ``--model owner/name`` loads it); a local checkpoint file or snapshot folder that ``--model NAME`` would load (a
    ``runs/best`` folder here, a ``.pt`` file) is that path, nothing to download but checked as a run reads it. An
    unknown name is a ConfigError listing the known ones, a missing ``.pt``/``.safetensors`` file a
    WeightsNotFoundError, both said before any download."""
    from .registry import get_model_card, list_models

    local = local_checkpoint(name)  # what load_pretrained takes for a file or folder: `--model runs/best` loads it
    if local is not None:  # (it was "unknown model 'runs/best'", though a run of --model runs/best loads it)
        if not local.exists():
            raise WeightsNotFoundError(f"weights file not found: {name}")
        return local
    if name.lower() in {k.lower() for k in list_models()} or not HUB_REPO.fullmatch(name):
        return get_model_card(name)
    return card_for_repo(name) or name


def card_for_repo(repo: str) -> Optional[ModelCard]:
    """The card of the published variant in Hugging Face repo ``repo`` (``ZhengPeng7/BiRefNet_HR``), if any:
    named by its repo, a variant runs at its card's size (2048² for HR, not the 1024² default)."""
    from .registry import list_models

    return next((c for c in list_models().values() if c.hub_repo and c.repo_type == "model" and c.hub_repo.lower() == repo.lower()), None)

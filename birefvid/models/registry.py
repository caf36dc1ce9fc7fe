"""Published BiRefNet variants as data: cards read from ``configs/models/*.json``.

Code never branches on a variant's name; adding a variant means adding a card. Users can add
their own cards (e.g. fine-tuned checkpoints) in a folder named by ``BIREFVID_MODELS_DIR``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, option
from ..user_paths import expand_home
from ..job import BACKBONE_NAMES  # the names models.backbones builds (tests/test_job.py), without its torch

USER_CARDS_ENV = "BIREFVID_MODELS_DIR"


@dataclass(frozen=True)
class ModelCard:
    """One published (or user) variant: backbone, native size and where its weights live."""

    name: str
    backbone: str
    resolution: tuple[int, int]  # (width, height) the variant was trained at
    hub_repo: Optional[str] = None
    file: Optional[str] = None
    repo_type: str = "model"
    package_file: Optional[str] = None  # shipped in birefvid/assets/
    path: Optional[Path] = None  # a local checkpoint (user cards)
    licence: str = ""
    description: str = ""

    @classmethod
    def from_json(cls, data: dict, origin: Path) -> "ModelCard":
        """Validate a card's fields; errors name the card file."""
        if not isinstance(data, dict) or not isinstance(data.get("source"), dict):
            raise ConfigError(f"model card {origin} must be a JSON object with a \"source\" object; see configs/README.md")
        try:
            source = data["source"]
            width, height = (int(v) for v in data["resolution"])
            card = cls(
                name=str(data["name"]),
                backbone=str(data["backbone"]),
                resolution=(width, height),
                hub_repo=source.get("hub_repo"),
                file=source.get("file"),
                repo_type=source.get("repo_type", "model"),
                package_file=source.get("package_file"),
                path=(origin.parent / source["path"]) if "path" in source else None,
                licence=data.get("licence", ""),
                description=data.get("description", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"model card {origin} is malformed ({exc!r}); see configs/README.md") from exc
        if card.backbone not in BACKBONE_NAMES:
            raise ConfigError(f"model card {origin}: unknown backbone {card.backbone!r}; expected one of {', '.join(BACKBONE_NAMES)}")
        if width % 32 or height % 32:
            raise ConfigError(f"model card {origin}: resolution {width}x{height} must be multiples of 32")
        if not (card.hub_repo and card.file) and not card.package_file and not card.path:
            raise ConfigError(f"model card {origin} names no weights (source.hub_repo+file, package_file or path)")
        return card


def _card_files() -> list[Path]:
    builtin = resources.files("birefvid.configs") / "models"
    files = sorted(Path(str(p)) for p in builtin.iterdir() if p.name.endswith(".json"))
    user_dir = os.environ.get(USER_CARDS_ENV)
    if user_dir:
        user_dir = expand_home(user_dir)  # `~/cards` from a Dockerfile's ENV was "not a folder"
        if not Path(user_dir).is_dir():
            raise ConfigError(f"{USER_CARDS_ENV}={user_dir} is not a folder; point it at a folder of model cards or unset it")
        files += sorted(Path(user_dir).glob("*.json"))
    return files



@lru_cache(maxsize=4)
def _load_cards(_user_dir: Optional[str]) -> dict[str, ModelCard]:
    cards: dict[str, ModelCard] = {}
    for path in _card_files():
        try:
            data = json.loads(path.read_bytes())  # bytes: UTF-8 with a BOM, or UTF-16, as Windows editors save it, read too
        except (OSError, ValueError) as exc:  # ValueError: JSON's errors and text in no JSON encoding
            raise ConfigError(f"model card {path} is not valid JSON: {exc}") from exc
        card = ModelCard.from_json(data, path)
        cards[card.name] = card  # user cards may override built-in ones by name
    return cards


def list_models() -> dict[str, ModelCard]:
    """All known variants by name (built-in cards plus ``$BIREFVID_MODELS_DIR``)."""
    return dict(_load_cards(os.environ.get(USER_CARDS_ENV)))


def get_model_card(name: str) -> ModelCard:
    """The card called ``name`` (case-insensitive); a clear ConfigError lists the known names."""
    cards = list_models()
    if name in cards:
        return cards[name]
    folded = {k.lower(): v for k, v in cards.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    raise ConfigError(
        f"unknown model {name!r}; known models: {', '.join(sorted(cards))} "
        f"(or pass {option('weights')} FILE, or a Hugging Face repo as {option('model')} owner/name)"
    )

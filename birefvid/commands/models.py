"""``birefvid models``: list the published variants the registry knows."""

from __future__ import annotations

import argparse

HELP = "list the model variants (--model NAME) and where their weights come from"


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.registry import list_models

    for card in sorted(list_models().values(), key=lambda c: c.name.lower()):
        where = f"{card.hub_repo}/{card.file}" if card.hub_repo else (card.package_file or str(card.path))
        print(f"{card.name:<11} {card.backbone:<10} {card.resolution[0]}x{card.resolution[1]:<5} {where}")
        if card.description:
            print(f"{'':11} {card.description}")
    return 0

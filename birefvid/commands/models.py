"""``birefvid models``: list the published variants the registry knows; ``--download NAME ...``: fetch their weights
ahead of time (a container image's build, a machine that will be offline)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import BirefvidError

if TYPE_CHECKING:
    from pathlib import Path

HELP = "list the model variants (--model NAME) and where their weights come from; --download fetches them ahead of time"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--download", nargs="+", metavar="NAME",
                        help="download (or find already cached) these models' weights, as a first run would, and say "
                             "where they are: names as --model takes them (lite, general, ..., or a Hugging Face repo "
                             "owner/name); for a container image's build or a machine that will be offline")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.download:
        return download(args.download, quiet=args.quiet)
    from ..models.registry import list_models

    for card in sorted(list_models().values(), key=lambda c: c.name.lower()):
        where = f"{card.hub_repo}/{card.file}" if card.hub_repo else (card.package_file or str(card.path))
        print(f"{card.name:<11} {card.backbone:<10} {card.resolution[0]}x{card.resolution[1]:<5} {where}")
        if card.description:
            print(f"{'':11} {card.description}")
    return 0


def download(names: list[str], *, quiet: bool = False) -> int:
    """Each model's weights fetched in turn; one line each (none under -q). Every name is looked up first, so a typo
    is one error line (exit 2) before any download; a model whose download fails is one error line naming it, and
    the others are still fetched (exit 2 at the end)."""
    from ..file_names import one_line
    from ..models.names import download_target
    from ..models.registry import ModelCard
    from ..urls import hide_urls_in

    targets: dict[str, "ModelCard | str | Path"] = {}
    for name in names:
        target = download_target(name)  # ConfigError: unknown model, the known ones listed
        # a card by its name (`B0` and `b0` are one); a repo or a local checkpoint as given (a Path's .name was its file name)
        targets.setdefault(target.name if isinstance(target, ModelCard) else str(target), target)
    from ..models.weights import prefetch_weights  # torch: only once every name is known, so a typo is said at once

    failed = 0
    for key, target in targets.items():
        name = one_line(key)  # a folder's or a card's name may hold a line break: each line stays one, as every other
        try:
            path, how = prefetch_weights(target)
        except BirefvidError as exc:
            print(f"birefvid: error: {name}: {one_line(hide_urls_in(str(exc)))}", file=sys.stderr)
            failed += 1
            continue
        if quiet:
            continue
        # a summary, on stderr as process's, image's and export's "wrote" line (-q: none)
        where = one_line(str(path))
        print({"shipped": f"{name}: shipped with birefvid, no download needed ({where})",
               "local": f"{name}: a local checkpoint, no download needed ({where})",
               "cached": f"{name}: already in the cache: {where}",
               "downloaded": f"{name}: downloaded to {where}",
               "replaced": f"{name}: the cached copy was damaged; downloaded again to {where}"}[how], file=sys.stderr)  # fmt: skip
    return 2 if failed else 0  # as every command's error line

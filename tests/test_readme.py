"""The Python blocks of the README and the docs pages, checked without running them: each must work pasted into a
fresh ``python``."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _unbound_names(source: str) -> set[str]:
    """Names a block reads that it neither imports nor assigns (nor are builtins)."""
    tree = ast.parse(source)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound


def test_every_readme_python_block_stands_on_its_own():
    """The notebook block used np and seg from the block above it: pasted alone it was a NameError."""
    blocks = [(page.name, block) for page in PAGES
              for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]
    assert len(blocks) >= 3
    for name, block in blocks:
        assert _unbound_names(block) == set(), (name, block.splitlines()[0])


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _options_by_command() -> dict[str, set[str]]:
    """Every command's option strings, from the parser the CLI runs (no torch import: a fraction of a second)."""
    from birefvid.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    return {name: {o for action in parser._actions for o in action.option_strings} for name, parser in commands.items()}


def test_every_option_of_every_command_is_documented_somewhere():
    """`export --format` was in `--help` only; an option a command takes needs a line where users look for it."""
    named = {o for page in PAGES for o in OPTION.findall(page.read_text(encoding="utf-8"))}
    spelt_short = {"--help", "--out", "--verbose", "--quiet"}  # -h, -o, -v, -q: the pages use the short forms
    missing = {command: sorted(o for o in options if o.startswith("--") and o not in named | spelt_short)
               for command, options in _options_by_command().items()}
    assert {command: options for command, options in missing.items() if options} == {}

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

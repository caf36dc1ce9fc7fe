"""Release check: install pyproject's declared minimum versions in a fresh venv and run a slice of the suite on them.

A floor nobody installs drifts: av>=12, onnxscript>=0.3 and openvino>=2024.4 were declared while the code needed
18.1, 0.7.2 and 2025.4. Run before a release (minutes; needs PyPI):

    python scripts/check_floors.py [--python python3.11] [--venv /tmp/floors] [--torch "torch==2.14.1 torchvision==0.29.1"]

torch and torchvision are not pinned to their floors (their pair must match the machine's wheels); pass them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"torch", "torchvision"}
SLICE = [
    "tests/test_cli_image.py",
    "tests/test_cli_eval.py",
    "tests/test_process_outputs.py",
    "tests/test_live_record.py",
    "tests/test_io_sources.py",
    "tests/test_backends.py::test_exported_engines_match_torch_fp32",
]


def floor_pins(dependencies: list[str]) -> list[str]:
    """``name>=X.Y`` as ``name==X.Y.*`` (the oldest release line allowed; ``>=2`` as ``==2.0.*``, since ``==2.*``
    installed numpy 2.2, not the floor), markers kept; torch and torchvision left out."""
    pins = []
    for dep in dependencies:
        spec, _, marker = dep.partition(";")
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)\s*", spec)
        if match is None or match[1].lower() in SKIP:
            continue
        version = match[2] if "." in match[2] else f"{match[2]}.0"
        pins.append(f"{match[1]}=={version}.*" + (f";{marker}" if marker else ""))
    return pins


def main() -> int:
    """Build the venv, install the floors and birefvid (no deps), run the slice; the exit status is pytest's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3.11")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/birefvid-floors"))
    parser.add_argument("--torch", default="torch torchvision", help="the torch and torchvision requirements to install")
    args = parser.parse_args()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = floor_pins(deps)
    py = args.venv / "bin" / "python"
    if not py.exists():
        subprocess.run([args.python, "-m", "venv", str(args.venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + args.torch.split() + pins + ["pytest", "pytest-xdist"], check=True)
    subprocess.run(pip + ["--no-deps", "-e", str(ROOT)], check=True)
    subprocess.run([str(py), "-m", "pip", "check"])  # informative: a floor another floor rules out shows here
    print("floors:", " ".join(pins), flush=True)
    env = {**os.environ, "BIREFVID_BACKEND": "torch", "BIREFVID_CACHE_DIR": str(args.venv / "cache")}
    return subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SLICE], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())

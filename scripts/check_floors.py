"""Release check: install pyproject's declared minimum versions in a fresh venv and run a slice of the suite on them.

A floor nobody installs drifts: av>=12, onnxscript>=0.3 and openvino>=2024.4 were declared while the code needed
18.1, 0.7.2 and 2025.4; huggingface_hub>=0.20 while the code imports huggingface_hub.errors (0.25). Run before a
release (minutes; needs PyPI):

    python scripts/check_floors.py [--python python3.11] [--venv /tmp/floors] [--torch "torch==2.14.1 torchvision==0.29.1"]
    python scripts/check_floors.py --write-constraints floors.txt   # only the pins, for `pip install -e .[dev] -c floors.txt`

Each ``name>=X.Y`` is pinned to the oldest release of that line (``==X.Y.0.*``: 0.7.0, not 0.7.4), the extras'
floors too. torch and torchvision are not pinned to their floors (their pair must match the machine's wheels); pass
them. pillow-heif 1.0 ([heic]) itself needs Pillow>=11.1, which rules out the Pillow floor: [heic] is checked
in a run of its own, ``--extras heic --pin pillow==11.1.0``.
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
SKIP = {"torch", "torchvision", "birefvid"}
EXTRAS = "onnxruntime,window,virtualcam,ray,decord"  # the optional backends and sinks; heic conflicts (see above)
SLICE = [
    "tests/test_cli_image.py",
    "tests/test_cli_eval.py",
    "tests/test_eval.py",
    "tests/test_process_outputs.py",
    "tests/test_live_record.py",
    "tests/test_io_sources.py",
    "tests/test_weights.py",  # huggingface_hub's cache and offline paths, safetensors
    "tests/test_backends.py",  # OpenVINO and ONNX Runtime on the export
    "tests/test_batch_ray.py",
    "tests/test_live_window.py",
    "tests/test_live_virtualcam.py",
]
HEIC_SLICE = ["tests/test_image_heic.py"]


def floor_pins(dependencies: list[str]) -> list[str]:
    """``name>=X.Y`` (or ``name>=X.Y,<Z``) as ``name==X.Y.0.*``: the oldest release the floor allows (``==X.Y.*`` installed the newest of
    the line: kornia 0.7.4 for >=0.7; ``.*`` still matches opencv's 4.12.0.88), extras and markers kept; torch left out."""
    pins = []
    for dep in dependencies:
        spec, _, marker = dep.partition(";")
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9.]+)\s*(?:,\s*<\s*[0-9.]+\s*)?", spec)  # a ceiling: av<19
        if match is None or match[1].lower() in SKIP:
            continue
        parts = match[3].split(".")
        version = ".".join(parts + ["0"] * (3 - len(parts)))
        pins.append(f"{match[1]}{match[2] or ''}=={version}.*" + (f";{marker}" if marker else ""))  # extras kept: ray[client]'s grpcio
    return pins


def declared_floors(extras: list[str]) -> list[str]:
    """The base dependencies' and the named extras' floors, as pins (a later pin of the same name is dropped)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in extras:
        deps += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for pin in floor_pins(deps):
        pins.setdefault(re.split(r"[=;]", pin)[0].lower(), pin)
    return list(pins.values())


def main() -> int:
    """Build the venv, install the floors and birefvid (no deps), run the slice; the exit status is pytest's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3.11")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/birefvid-floors"))
    parser.add_argument("--torch", default="torch torchvision", help="the torch and torchvision requirements to install")
    parser.add_argument("--extras", default=EXTRAS, help=f"comma-separated extras whose floors to add (default {EXTRAS})")
    parser.add_argument("--pin", action="append", default=[], metavar="NAME==VERSION", help="replace one floor's pin")
    parser.add_argument("--write-constraints", type=Path, metavar="FILE", help="write the pins to FILE and stop")
    args = parser.parse_args()
    extras = [e for e in args.extras.split(",") if e]
    overrides = {re.split(r"[=<>]", p)[0].lower(): p for p in args.pin}
    pins = [overrides.pop(re.split(r"[=;]", p)[0].lower(), p) for p in declared_floors(extras)] + list(overrides.values())
    if args.write_constraints:
        args.write_constraints.write_text("\n".join(pins) + "\n")
        print(f"wrote {len(pins)} pins to {args.write_constraints}")
        return 0
    py = args.venv / "bin" / "python"
    if not py.exists():
        subprocess.run([args.python, "-m", "venv", str(args.venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + args.torch.split() + pins + ["pytest", "pytest-xdist"], check=True)
    subprocess.run(pip + ["--no-deps", "-e", str(ROOT)], check=True)
    subprocess.run([str(py), "-m", "pip", "check"])  # informative: a floor another floor rules out shows here
    print("floors:", " ".join(pins), flush=True)
    tests = SLICE if "heic" not in extras else SLICE[:1] + HEIC_SLICE
    env = {**os.environ, "BIREFVID_CACHE_DIR": str(args.venv / "cache")}
    return subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())

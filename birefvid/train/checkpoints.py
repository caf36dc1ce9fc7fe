"""Training checkpoints (resumable ``last.pt``) and shipped weights (``.safetensors``)."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import torch
from safetensors.torch import save_file

from birefvid.errors import SinkError, WeightsError
from birefvid.io.atomic import apply_default_permissions

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = "birefvid-train-1"
BEST_NAME = "best.pt"  # the weights with the best validation IoU, beside last.pt
BEST_FORMAT = "birefvid-best-1"  # not resumable (no optimizer state): load_checkpoint refuses it by this
FULL_BELOW = 1 << 20  # bytes free after a failed write that mean the write filled the disk


@contextmanager
def _written_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; renamed over it on success, removed on failure.

    The finished file gets umask permissions (safetensors creates its files 0600). A write that fails
    (a full disk: torch.save says so as a RuntimeError about zip positions) is a SinkError in one line;
    a file already at ``path`` (the previous checkpoint) is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        apply_default_permissions(tmp, is_dir=False)
        os.replace(tmp, path)
        _remove_dead_writers_files(path)
    except Exception as exc:
        reason = _write_failure(tmp, exc)  # before the partial file is removed: it is what filled the disk
        _remove(tmp)
        kept = f"; {path.name} there is kept as it was" if path.exists() else ""
        raise SinkError(f"cannot write {path}: {reason}{kept}") from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    """Remove a failed write's temporary file, if it was made: on a read-only file system even a missing one's
    unlink fails (EROFS, not ENOENT), which replaced the one-line error with a traceback."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _remove_dead_writers_files(path: Path) -> None:
    """Delete the temporaries of ``path`` whose writer is gone: a run killed (``kill -9``, the OOM killer) while
    saving left a hidden file as big as the checkpoint behind, one more each time."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = leftover.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (one of another user's counts as running); always True on Windows, where
    ``os.kill(pid, 0)`` would end the process, not ask about it."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, another user's
        return True
    return True


def _write_failure(tmp: Path, exc: Exception) -> str:
    """Why writing ``tmp`` failed, in words: a full disk is named as such, whatever the writer raised."""
    try:
        written, free = (tmp.stat().st_size if tmp.exists() else 0), shutil.disk_usage(tmp.parent).free
    except OSError:
        written, free = 0, None
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    # the reason the system gave, where it is another than a full disk: a read-only disk (free space 0) is no full one.
    # torch.save says it as "[enforce fail at inline_container.cc:747] . open file failed with strerror: ..."
    said = exc.strerror if isinstance(exc, OSError) else text.rpartition("strerror: ")[2].strip() if "strerror: " in text else None
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC or said == os.strerror(errno.ENOSPC)
    if full or (not said and free is not None and free < FULL_BELOW):
        return f"no space left on its disk ({written / 1e6:.0f} MB written before it filled up); free some space, or write elsewhere"
    return said or text[:200]


def save_checkpoint(path: Union[str, Path], state: Mapping[str, Any]) -> Path:
    """Write a resumable training state atomically: a crash never leaves a half-written file."""
    path = Path(path)
    with _written_atomically(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return path


def save_best(
    path: Union[str, Path], model: torch.nn.Module, *, step: int, resolution: str, scores: Mapping[str, float]
) -> Path:
    """Write the model's weights with their step, training size (WxH) and validation scores, atomically.

    Readable by ``--weights`` like last.pt (it finds the ``model`` state and the ``resolution``) at a third of
    its size: the optimizer's state is left out, since nothing resumes from the best weights."""
    path = Path(path)
    with _written_atomically(path) as tmp:
        torch.save({"format": BEST_FORMAT, "step": step, "resolution": resolution, "val": dict(scores),
                    "model": model.state_dict()}, tmp)  # fmt: skip
    return path


def load_checkpoint(path: Union[str, Path]) -> dict[str, Any]:
    """Read a training state written by ``save_checkpoint``; WeightsError if it is not one."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read training checkpoint {path} ({exc}); delete it to start over") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path} is not a birefvid training checkpoint; delete it or pick another output folder")
    return state


def save_weights(
    model: torch.nn.Module,
    path: Union[str, Path],
    *,
    half: bool = False,
    metadata: Optional[Mapping[str, str]] = None,
) -> Path:
    """Save the model's state_dict as .safetensors (float16 if ``half``) with string metadata.

    Keys are the model's own (no ``module.``/``_orig_mod.`` prefixes), so
    ``model.load_state_dict(safetensors.torch.load_file(path))`` restores it.
    """
    path = Path(path)
    tensors = {}
    for key, value in model.state_dict().items():
        for prefix in ("module.", "_orig_mod."):
            key = key[len(prefix):] if key.startswith(prefix) else key
        t = value.detach().to("cpu")
        if half and t.is_floating_point():
            t = t.to(torch.float16)
        tensors[key] = t.contiguous().clone()  # clone: safetensors refuses shared storage
    meta = {"format": "pt", **{str(k): str(v) for k, v in (metadata or {}).items()}}
    with _written_atomically(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        _sort_metadata(tmp)
    log.info("saved %d tensors to %s", len(tensors), path)
    return path


def _sort_metadata(path: Path) -> None:
    """Rewrite a .safetensors header's metadata in key order, in place: safetensors writes it in a random
    (hash) order each time, so two identical seeded runs wrote files whose bytes (and checksums) differed."""
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        if "__metadata__" not in header:
            return
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
        if len(text) > size:  # escapes written longer than safetensors' own: keep its header rather than move the data
            return
        f.seek(8)
        f.write(text.ljust(size))  # spaces pad a header, as safetensors pads it to 8 bytes

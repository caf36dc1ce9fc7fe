"""Load BiRefNet checkpoints: local .pth/.safetensors, shipped assets and Hugging Face repos.

Every failure is a ``WeightsError`` subclass with one line that says what and how to fix it.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import torch

from ..errors import NOTICE, ConfigError, OfflineError, WeightsError, WeightsNotFoundError, option, stops_kept
from .backbones import BACKBONES
from .birefnet import BiRefNet
from .registry import ModelCard
from .names import FOLDER_WEIGHTS, HUB_REPO, WEIGHTS_FILE_SUFFIXES, card_for_repo, download_target, local_checkpoint, weights_in_folder  # noqa: F401  (their old home)

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")
OPTIONAL_KEY = ".num_batches_tracked"  # a checkpoint may leave these out (parameters and running stats only)
KEY_PREFIXES = ("module.", "_orig_mod.", "model.", "birefnet.")
SAFETENSORS_SUFFIXES = (".safetensors",)
# how a torch checkpoint starts: a zip archive (torch >= 1.6), or a protocol-2 pickle (the older format)
TORCH_MAGIC = (b"PK", b"\x80")
LFS_POINTER = b"version https://git-lfs"  # what a Hugging Face repo cloned without git-lfs holds instead of weights
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a plain state dict (unwrapped, prefixes stripped)."""
    return read_weights(path)[0]


def read_weights(path: str | Path, *, mapped: bool = False) -> tuple[dict[str, torch.Tensor], Optional[tuple[int, int]]]:
    """(the state dict, the (width, height) it was trained at when the file says so) of a checkpoint file.

    The size comes from a safetensors file's metadata or a ``birefvid train`` checkpoint (last.pt). ``mapped``: a
    PyTorch (zip) checkpoint's tensors are mapped from the file, not read, for a caller that looks at their shapes
    only (safetensors files are mapped anyway)."""
    path = Path(path)
    if path.is_dir():
        path = weights_in_folder(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    try:
        with stops_kept():  # a Ctrl-C in safetensors' reader came out as a ValueError: "not a BiRefNet checkpoint"
            if path.suffix.lower() in SAFETENSORS_SUFFIXES:
                from safetensors.torch import load_file

                raw: object = load_file(str(path), device="cpu")
            else:
                raw = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped and zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not a checkpoint" to the user
        raise WeightsError(_unreadable(path, exc)) from exc
    trained_at = raw.get("resolution") if isinstance(raw, Mapping) and isinstance(raw.get("resolution"), str) else None
    resolution = _parse_size(trained_at) if trained_at else checkpoint_resolution(path)
    return normalize_state_dict(raw, str(path)), resolution


def _unreadable(path: Path, exc: Exception) -> str:
    """The error line for a ``path`` torch or safetensors could not read, in words a user can act on.

    torch's own messages do not say it: a refused pickle is a paragraph of advice (with terminal
    colour codes) that ends in the real reason, a file that is no checkpoint at all gives a bare
    ``KeyError: '101'``, and a cut-short one ``[Errno 22] Invalid argument``."""
    text = _TERMINAL_CODES.sub("", str(exc))
    unsafe = _UNSAFE_GLOBAL.search(text)
    if unsafe:
        return (f"{path} holds a Python object, {unsafe.group(1)}, besides its tensors, which birefvid does not unpickle "
                "since unpickling can run code; if you trust the file, load it with torch.load(FILE, weights_only=False) "
                "and torch.save its state_dict alone")
    try:
        with path.open("rb") as f:
            head = f.read(len(LFS_POINTER))
    except OSError as err:  # e.g. no permission: that is the reason
        return f"cannot read weights file {path} ({err.strerror})"
    if head.startswith(LFS_POINTER):
        return (f"{path} is a Git LFS pointer, not the weights (a repository cloned without git-lfs): "
                "run `git lfs install && git lfs pull` in it, or fetch the file with `hf download OWNER/REPO model.safetensors`")
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        if _safetensors_cut_short(path):
            return f"{path} is not a BiRefNet checkpoint (a .safetensors file cut short: an interrupted download or copy?)"
    else:
        if not head.startswith(TORCH_MAGIC):
            return f"{path} is not a BiRefNet checkpoint (neither a PyTorch checkpoint nor a .safetensors file)"
        if head.startswith(TORCH_MAGIC[0]) and not zipfile.is_zipfile(path):
            return f"{path} is not a BiRefNet checkpoint (a PyTorch checkpoint cut short: an interrupted download or copy?)"
    lines = text.strip().splitlines()
    return f"{path} is not a BiRefNet checkpoint (could not read it: {lines[0][:160] if lines else type(exc).__name__})"


def _safetensors_cut_short(path: Path) -> bool:
    """Does a .safetensors file's header promise more bytes than the file holds? (safetensors says only
    "incomplete metadata, file not fully covered")."""
    import json
    import struct

    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            text = f.read(min(length, 100_000_000))
        size = path.stat().st_size
    except (OSError, struct.error):
        return False
    if not text.startswith(b"{"):
        return False  # not a safetensors file at all
    if len(text) < length:
        return True  # cut inside its header
    try:
        header = json.loads(text)
    except ValueError:
        return False
    if not isinstance(header, dict):
        return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    return bool(ends) and 8 + length + max(ends) > size


def _parse_size(value: str) -> Optional[tuple[int, int]]:
    """(width, height) of a "WxH" string, or None when it is not one."""
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def normalize_state_dict(raw: object, source: str) -> dict[str, torch.Tensor]:
    """Unwrap ``{"state_dict": ...}``-style containers and strip DDP / torch.compile key prefixes."""
    while isinstance(raw, Mapping) and not _is_tensor_dict(raw):
        inner = next((raw[k] for k in WRAPPER_KEYS if isinstance(raw.get(k), Mapping)), None)
        if inner is None:
            break
        raw = inner
    if not isinstance(raw, Mapping) or not _is_tensor_dict(raw):
        raise WeightsError(f"{source} is not a BiRefNet checkpoint (no tensors found in it)")
    state = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    changed = True
    while changed:
        changed = False
        for prefix in KEY_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def _is_tensor_dict(d: Mapping) -> bool:
    return bool(d) and sum(isinstance(v, torch.Tensor) for v in d.values()) >= max(1, len(d) // 2)


@lru_cache(maxsize=None)
def expected_shapes(backbone: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of our BiRefNet with this backbone, built on the meta device (no memory, fast)."""
    with torch.device("meta"):
        model = BiRefNet(backbone)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@lru_cache(maxsize=None)
def _model_dtypes(backbone: str) -> dict[str, torch.dtype]:
    """The dtype of each tensor of our BiRefNet with this backbone (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        model = BiRefNet(backbone)
    return {k: v.dtype for k, v in model.state_dict().items()}


def _floating_keys(backbone: str) -> frozenset[str]:
    """The keys of our BiRefNet with this backbone whose tensors are floating point (all but BatchNorm's counters
    and Swin's ``relative_position_index``)."""
    return frozenset(k for k, dtype in _model_dtypes(backbone).items() if dtype.is_floating_point)


def _integer_keys(backbone: str) -> dict[str, torch.dtype]:
    """The keys of our BiRefNet with this backbone whose tensors are integers, with their dtype."""
    return {k: dtype for k, dtype in _model_dtypes(backbone).items() if not dtype.is_floating_point}


def _holds_exact_integers(tensor: torch.Tensor) -> bool:
    """Whether a floating-point tensor that was made from integers still holds them exactly: every value whole and
    under 2^(mantissa bits + 1), past which its dtype rounds integers (256 for bfloat16, 2048 for float16)."""
    limit = 2.0 / torch.finfo(tensor.dtype).eps  # eps = 2^-mantissa bits
    values = tensor.double()
    return bool(torch.equal(values, values.round()) and (values.abs() < limit).all())


def check_dtypes(state: Mapping[str, torch.Tensor], backbone: str, source: str) -> None:
    """A WeightsError when weights the model keeps in floating point are integers (a quantized or hand-converted file):
    names and shapes fit, so the check before work passed it, and torch refused it only as the model loaded, in a
    traceback ("Only Tensors of floating point and complex dtype can require gradients"), after a batch's set-up."""
    floating = _floating_keys(backbone)
    wrong = [k for k in state if k in floating and not state[k].is_floating_point()]
    if wrong:
        k = wrong[0]
        raise WeightsError(f"{source} holds {len(wrong)} weight tensor{'s that are' if len(wrong) > 1 else ' that is'} not floating point "
                           f"(e.g. {k}: {str(state[k].dtype).removeprefix('torch.')}); BiRefNet loads float32, float16 or bfloat16 "
                           "weights: save the checkpoint from the model before it was quantized or converted")  # fmt: skip
    # a file converted tensor by tensor ({k: v.half()}) holds the model's integer indices as floats too: taken back as
    # integers where they are exact; bfloat16 rounds Swin's (up to 528) and the model would look up the wrong places
    integer = _integer_keys(backbone)  # once: made again for each key, it was a dict of the model's ~600 keys ~600 times a load
    rounded = [k for k in state if k in integer and not k.endswith(OPTIONAL_KEY)
               and state[k].is_floating_point() and not _holds_exact_integers(state[k])]  # fmt: skip
    if rounded:
        k = rounded[0]
        raise WeightsError(f"{source} holds {k} (an index the model keeps as integers) as {str(state[k].dtype).removeprefix('torch.')}, "
                           "which cannot hold its values exactly; convert the checkpoint's floating-point tensors only "
                           "(model.half() or model.to(torch.bfloat16) keeps integer tensors as they are)")  # fmt: skip


def _mismatch(state: Mapping[str, torch.Tensor], backbone: str) -> tuple[list[str], list[str], list[str]]:
    expected = expected_shapes(backbone)
    # BatchNorm's step counter is not used at inference and torch itself fills it in for older files
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_KEY)]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    return missing, unexpected, wrong


def detect_backbone(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The backbone whose BiRefNet has exactly these keys and shapes, or None."""
    for backbone in BACKBONES:
        if not any(_mismatch(state, backbone)):
            return backbone
    return None


def nearest_backbone(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The backbone whose BiRefNet shares most of these keys with their shapes (over half of both), or None."""
    best, best_shared = None, 0
    for backbone in BACKBONES:
        expected = expected_shapes(backbone)
        shared = sum(1 for k, shape in expected.items() if k in state and tuple(state[k].shape) == shape)
        if shared > best_shared and 2 * shared > max(len(expected), len(state)):
            best, best_shared = backbone, shared
    return best


def check_fits(state: Mapping[str, torch.Tensor], backbone: str, source: str) -> None:
    """Raise a WeightsError that says which keys/shapes disagree and which backbone fits instead."""
    missing, unexpected, wrong = _mismatch(state, backbone)
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} shapes differ (e.g. {k}: file {tuple(state[k].shape)} vs model {expected_shapes(backbone)[k]})")
    if missing:
        parts.append(f"{len(missing)} keys missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    fits = detect_backbone(state)
    hint = f"it fits {option('backbone', fits)}" if fits else "no BiRefNet backbone fits it"
    raise WeightsError(f"{source} does not fit backbone {backbone}: {'; '.join(parts)}; {hint}")


def _offline_error(repo: str, filename: str, repo_type: str, why: str) -> OfflineError:
    """The line for weights that are not cached and cannot be downloaded now (offline mode, an unreachable server):
    the ``birefvid models --download`` that fetches them ahead of time (where the network is, then the cache copied
    here), the ``hf download`` only for a file no name of ours fetches."""
    unset = " (HF_HUB_OFFLINE unset)" if _offline_mode() else ""
    return OfflineError(
        f"cannot download {filename} from Hugging Face repo {repo}: {why}, and it is not in the cache; "
        f"on a connected machine run `{_prefetch_command(repo, filename, repo_type)}`{unset} and copy the cache folder "
        f"({_hub_cache()}), or pass {option('weights')} FILE (its backbone is detected)"
    )


def _offline_mode() -> bool:
    """Whether HF_HUB_OFFLINE is on (huggingface_hub read it as it was imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _prefetch_command(repo: str, filename: str, repo_type: str) -> str:
    """The command that fetches ``repo``'s ``filename`` into the cache ahead of time: ``birefvid models --download``
    with the model's card name (``lite``), or with the repo where ``--model owner/name`` loads that file
    (its model.safetensors); ``hf download`` for any other file."""
    import shlex

    from .registry import list_models

    card = next((c for c in list_models().values()
                 if c.hub_repo == repo and c.file == filename and c.repo_type == repo_type), None)  # fmt: skip
    if card is not None:
        return f"birefvid models --download {shlex.quote(card.name)}"
    if repo_type == "model" and filename == "model.safetensors":
        return f"birefvid models --download {shlex.quote(repo)}"
    flag = f" --repo-type {repo_type}" if repo_type != "model" else ""
    return f"hf download {repo} {filename}{flag}"


def _hub_cache() -> str:
    """The Hugging Face cache folder this run reads ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    home = str(Path.home())
    folder = str(constants.HF_HUB_CACHE)
    return "~" + folder[len(home):] if folder.startswith(home + os.sep) else folder


def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the hub? Answers in seconds where huggingface_hub retries for ~30 s.

    Behind a proxy we cannot tell, so we say yes and let huggingface_hub try.
    """
    import os
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def cached_hub_file(repo: str, filename: str, repo_type: str = "model") -> Optional[Path]:
    """The file in the standard Hugging Face cache (``HF_HOME``, ``HF_HUB_CACHE``), or None when it is not there."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, repo_type=repo_type, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def fetch_hub_file(repo: str, filename: str, repo_type: str = "model", *, replace: bool = False, ahead: bool = False) -> Path:
    """Find one file in the standard Hugging Face cache, else download it from ``$HF_ENDPOINT`` (the hub or a mirror);
    honours HF_HUB_OFFLINE. Every failure is one line naming the server and what it did; a download that fails
    leaves nothing in the cache (huggingface_hub writes a temporary file and renames it whole). ``replace``: download
    it even when cached (a cached copy found damaged), over the cached one. ``ahead``: ``birefvid models --download``
    is the caller, so a failure's line does not send the user to the command they ran."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    cached = None if replace else cached_hub_file(repo, filename, repo_type)
    if cached is not None:
        return cached
    if constants.HF_HUB_OFFLINE:
        raise _offline_error(repo, filename, repo_type, "offline mode (HF_HUB_OFFLINE) is on")
    if not hub_reachable(constants.ENDPOINT):
        raise _offline_error(repo, filename, repo_type, f"{constants.ENDPOINT} is unreachable")
    log.warning("downloading %s from Hugging Face repo %s (%s)%s", filename, repo,
                "again, over the damaged cached copy" if replace else "first use; cached afterwards",
                "" if _is_the_hub(constants.ENDPOINT) else f" through {constants.ENDPOINT}", extra=NOTICE)
    _one_log_handler()
    with _forgotten_if_stopped(repo, filename, repo_type):
        try:
            path = Path(hf_hub_download(repo_id=repo, filename=filename, repo_type=repo_type, force_download=replace,
                                        **_bar_option(hf_hub_download, filename)))  # fmt: skip
        except Exception as caught:  # noqa: BLE001 - the hub's, httpx's and the OS's errors: one line saying which
            exc = _forced_cause(caught) if replace else caught
            # (LocalEntryNotFoundError is an EntryNotFoundError too: the server failed, the file may well exist)
            if isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)) and not isinstance(exc, LocalEntryNotFoundError):
                raise WeightsError(f"{repo}/{filename} does not exist on {_server(constants.ENDPOINT)} ({type(exc).__name__})"
                                   + ("" if _is_the_hub(constants.ENDPOINT) else "; a mirror may not hold every repo: check the name, "
                                      "or download it from the hub itself (HF_ENDPOINT unset)")) from exc  # fmt: skip
            unwritable = _cache_write_error(exc)
            if unwritable is not None:  # retrying, or `hf download` into the same cache, fails alike: say where to write
                raise _unwritable_cache_error(repo, filename, repo_type, unwritable) from exc
            why = _download_failure(exc)
            if why is None:
                raise
            raise _download_error(repo, filename, repo_type, why, damaged_kept=replace, ahead=ahead) from exc
        _check_download(path, repo, filename, repo_type, ahead=ahead)
    return path


def _forced_cause(exc: Exception) -> Exception:
    """The server's own error behind a failed ``force_download``: there huggingface_hub wraps whatever its first
    request met (a 500, a 429, a missing repo, a refused connection) in a bare ValueError ("Force download failed due
    to the above error."), which no line of ours knew, so ``models --download`` replacing a damaged cached copy
    from a mirror in trouble ended in a traceback."""
    cause = exc.__cause__
    if type(exc) is ValueError and isinstance(cause, Exception):
        return cause
    return exc


@contextmanager
def _forgotten_if_stopped(repo: str, filename: str, repo_type: str) -> Iterator[None]:
    """Within this block (a download of a file not yet cached, and its SHA-256 check), a Ctrl-C or SIGTERM removes
    the file from the cache if huggingface_hub has already linked it there: it links the file as the download ends,
    before birefvid's check, so a run stopped then (the check takes 2 s for `general`) left a file that every later run,
    ``models --download`` included, took as checked ("already in the cache"), damaged or not. The next run downloads
    it again."""
    try:
        yield
    except KeyboardInterrupt:  # Terminated (SIGTERM) is one
        unchecked = cached_hub_file(repo, filename, repo_type)
        if unchecked is not None:
            for stale in (unchecked.resolve(), unchecked):
                stale.unlink(missing_ok=True)
        raise


def _check_download(path: Path, repo: str, filename: str, repo_type: str, *, ahead: bool = False) -> None:
    """A file just downloaded is the one the server announced: an LFS file's blob is named after its SHA-256 (the
    hub's ETag), which huggingface_hub checks over plain HTTP only by its size, so a mirror or proxy that served other
    bytes of the same length (a damaged cache of its own) had them loaded as the model, run after run. Checked once,
    after the download; a damaged one is removed from the cache (blob and snapshot link), and said in one line (one
    whose check a Ctrl-C stops is removed too: ``_forgotten_if_stopped``)."""
    from huggingface_hub import constants

    blob = path.resolve()
    if not re.fullmatch(r"[0-9a-f]{64}", blob.name):  # a git file (ETag: a git SHA-1), or a cache without links
        return
    digest = _sha256(blob)
    if digest == blob.name:
        return
    for stale in (blob, path):
        stale.unlink(missing_ok=True)
    raise _download_error(repo, filename, repo_type, f"{_server(constants.ENDPOINT)} sent a damaged file (its SHA-256 is "
                          f"{digest[:12]}..., not the {blob.name[:12]}... it announced)", ahead=ahead)  # fmt: skip


def _sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex, read in 4 MiB pieces (``general``'s 900 MB in about 2 s)."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _is_the_hub(endpoint: str) -> bool:
    return endpoint.rstrip("/") == "https://huggingface.co"


def _server(endpoint: str) -> str:
    """The server files come from, in words: Hugging Face, or the mirror HF_ENDPOINT names."""
    return "Hugging Face" if _is_the_hub(endpoint) else f"the mirror {endpoint} (HF_ENDPOINT)"


def _download_failure(exc: BaseException) -> Optional[str]:
    """What went wrong in a failed download, in words (the server's status, a dropped connection, a web page
    instead of the hub's answer), from huggingface_hub's error and its cause; None for an error that is no
    download failure (a bug: let it through)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import FileMetadataError, HfHubHTTPError, LocalEntryNotFoundError

    server = _server(constants.ENDPOINT)
    if isinstance(exc, LocalEntryNotFoundError):  # the first request failed, nothing cached: the cause says why
        cause = exc.__cause__
        return _download_failure(cause) if cause is not None else f"{server} did not answer"
    response = getattr(exc, "response", None)  # HfHubHTTPError's; older huggingface_hub (0.x) let requests' own HTTPError out
    if (isinstance(exc, HfHubHTTPError) or type(exc).__name__ in ("HTTPError", "HTTPStatusError")) and isinstance(
            getattr(response, "status_code", None), int):  # fmt: skip
        code = response.status_code
        reason = getattr(response, "reason_phrase", None) or getattr(response, "reason", None) or ""  # httpx's, requests'"
        advice = ("too many requests: wait a while and run the command again" if code == 429
                  else "the server's trouble: run the command again later" if code >= 500
                  else "a private or gated repo needs a token (`hf auth login` or HF_TOKEN)" if code in (401, 403)
                  else "")  # fmt: skip
        return f"{server} answered {code} {reason}".rstrip() + (f" ({advice})" if advice else "")
    if isinstance(exc, FileMetadataError):
        return (f"{server} did not answer as a Hugging Face hub does (no X-Repo-Commit or ETag header: a web page, "
                "a proxy's sign-in page or an HF_ENDPOINT that is no hub or mirror?)")
    transport = _transport_failure(exc)
    if transport == "proxy":  # requests' (huggingface_hub 0.x) ProxyError: its first line is urllib3's MaxRetryError(...)
        proxy = _proxy_for(constants.ENDPOINT)
        named = f" {proxy[0]} ({proxy[1]})" if proxy else ""
        return f"the proxy{named} refused the connection to {server}: check the proxy, or leave the server out of it with NO_PROXY"
    if transport == "unreached":
        proxy = _proxy_for(constants.ENDPOINT)
        if proxy is not None:  # httpx says "Connection refused" alike for the proxy and the server
            url, variable = proxy
            return (f"{server} could not be reached through the proxy {url} ({variable}) ({_first_line(exc) or type(exc).__name__}): "
                    "check the proxy, or leave the server out of it with NO_PROXY")  # fmt: skip
        return f"{server} could not be reached ({_first_line(exc) or type(exc).__name__})"
    if transport == "broke off":  # a connection dropped mid-file, after huggingface_hub's resumes
        return f"the connection to {server} broke off and resuming failed ({_first_line(exc) or type(exc).__name__})"
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        sizes = re.search(r"size (\d+) but has size (\d+)", str(exc))
        sent = f" ({sizes.group(2)} bytes where it announced {sizes.group(1)}: a web page or an error instead of the file?)" if sizes else ""
        return f"{server} sent a file of the wrong size{sent}"
    if isinstance(exc, OSError) and exc.errno is not None:  # a full disk, a cache folder that cannot be written
        return f"the cache could not be written ({exc.strerror}: {exc.filename or _hub_cache()})"
    return None


def _transport_failure(exc: BaseException) -> Optional[str]:
    """"proxy", "unreached" or "broke off" for an error of the HTTP library huggingface_hub uses, else None. Told by
    class names, not imports: that library is the hub's choice and has changed (requests up to 0.x, httpx in 1.x,
    httpx2 since), and importing the wrong one in an error path made a failed download a traceback."""
    kind = type(exc)
    if kind.__module__.split(".")[0] not in ("httpx2", "httpx", "httpcore", "requests", "urllib3"):
        return None
    names = {c.__name__ for c in kind.__mro__}
    if "ProxyError" in names:
        return "proxy"
    if names & {"ConnectError", "ConnectTimeout", "TimeoutException", "Timeout", "ConnectionError"}:
        return "unreached"  # requests says a connection reset mid-file this way too: its words, then
    return "broke off"


def _bar_option(download: Any, filename: str) -> dict[str, Any]:
    """hf_hub_download's ``tqdm_class`` (the bar named after the file, none under -q) where it takes one: older
    huggingface_hub (0.25 to 1.x, which pyproject allows) has no such parameter, and passing it failed every download."""
    import inspect

    try:
        takes = "tqdm_class" in inspect.signature(download).parameters
    except (TypeError, ValueError):
        takes = False
    return {"tqdm_class": _download_bar(filename)} if takes else {}


def _proxy_for(endpoint: str) -> Optional[tuple[str, str]]:
    """(the proxy URL, shown without its password, and the variable that set it) that requests to ``endpoint`` go
    through, as httpx reads them from the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, less NO_PROXY); None
    when there is none."""
    import urllib.request
    from urllib.parse import urlparse

    from ..urls import without_password

    host = urlparse(endpoint).hostname or ""
    if urllib.request.proxy_bypass_environment(host):
        return None
    scheme = urlparse(endpoint).scheme
    for variable in (f"{scheme}_proxy", "all_proxy"):
        url = os.environ.get(variable) or os.environ.get(variable.upper())
        if url:
            return without_password(url), variable.upper()
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def _partial_kept(repo: str, repo_type: str) -> bool:
    """Whether huggingface_hub left a part-downloaded blob (``*.incomplete``) of ``repo`` in the cache: 0.x and 1.0 keep
    it for the next download to resume from (2.x removes it); birefvid trusts no blob before its SHA-256 is checked."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    blobs = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type=repo_type) / "blobs"
    return any(blobs.glob("*.incomplete"))


def _download_error(repo: str, filename: str, repo_type: str, why: str, *, damaged_kept: bool = False,
                    ahead: bool = False) -> OfflineError:
    """The line for a download the server or the link failed; ``damaged_kept``: it was to replace a damaged cached
    copy, which a run would still find (and refuse), so the line says it is there rather than that nothing is.
    The remedy is a retry, and (``ahead`` False: a run, not ``models --download``) the ``birefvid models --download``
    that fetches the file alone; it named ``hf download``, which reads the same HF_ENDPOINT and proxy, and skips the
    SHA-256 and backbone checks."""
    kept = _what_was_kept(repo, repo_type)
    if damaged_kept and cached_hub_file(repo, filename, repo_type) is not None:
        kept += " (the damaged copy there is left as it was)"
    alone = "" if ahead else f", or fetch it alone with `{_prefetch_command(repo, filename, repo_type)}`"
    return OfflineError(f"cannot download {filename} from Hugging Face repo {repo}: {why}; {kept}: "
                        f"run the command again to retry{alone}, or pass {option('weights')} FILE")  # fmt: skip


def _what_was_kept(repo: str, repo_type: str) -> str:
    """What a failed download left in the cache, in words: nothing, or (older huggingface_hub) a part to resume from."""
    return ("the part that came was kept for the next run to resume from (checked whole before use)"
            if _partial_kept(repo, repo_type) else "nothing of it was kept in the cache")  # fmt: skip


CACHE_WRITE_ERRNOS = {"EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT"}  # the cache, not the server: a retry fails alike


def _cache_write_error(exc: BaseException) -> Optional[OSError]:
    """The OSError behind a failed download that says the cache cannot be written (no permission, a read-only or full
    file system), looking through huggingface_hub's wrappers (``__cause__``: not ``__context__``, where an error it
    handled, such as its symlink probe's PermissionError, would make a server's failure the cache's); None for any other."""
    import errno

    codes = {getattr(errno, name) for name in CACHE_WRITE_ERRNOS if hasattr(errno, name)}
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in codes and _transport_failure(current) is None:
            return current
        current = current.__cause__
    return None


def _hub_cache_setting() -> str:
    """Which variable chose the Hugging Face cache folder, in words for an error line: `` (set by HF_HUB_CACHE)`` (or
    its old name), `` (HF_HOME's hub folder)``, or nothing (the default under the home folder)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return f" (set by {variable})"
    return " (HF_HOME's hub folder)" if os.environ.get("HF_HOME") else ""


def _unwritable_cache_error(repo: str, filename: str, repo_type: str, err: OSError) -> OfflineError:
    """The line for a download the cache could not take (a normal user with root's HF_HOME, a read-only HF_HOME in a
    container or on a shared machine, a full disk): it said "run the command again to retry, or fetch it with
    `hf download ...`", both of which write the same folder and fail alike. It names the cache folder, what the
    system said, and the variable that puts the cache elsewhere: HF_HUB_CACHE, which huggingface_hub reads before
    HF_HOME (BIREFVID_CACHE_DIR is the exports' cache, not the weights')."""
    import errno

    full = err.errno in {getattr(errno, "ENOSPC", -1), getattr(errno, "EDQUOT", -1)}
    where = f": {err.filename}" if err.filename else ""
    fix = ("free space there, or point HF_HUB_CACHE at a folder with room" if full
           else "point HF_HUB_CACHE at a folder you can write (e.g. `export HF_HUB_CACHE=~/hf-cache`)")  # fmt: skip
    return OfflineError(f"cannot download {filename} from Hugging Face repo {repo}: the cache folder {_hub_cache()}"
                        f"{_hub_cache_setting()} {'has no room' if full else 'cannot be written'} ({err.strerror}{where}); "
                        f"{_what_was_kept(repo, repo_type)}: {fix} and run the command again, or pass {option('weights')} FILE")  # fmt: skip


@lru_cache(maxsize=None)
def _one_log_handler() -> None:
    """huggingface_hub logs through a stream handler of its own on its ``huggingface_hub`` logger, which also passes
    its records on to the root logger: where the program has given the root a handler (the command line's), every
    retry warning came out twice, once bare and once in the program's style. Then its own handler is removed."""
    library = logging.getLogger("huggingface_hub")
    if not logging.getLogger().handlers or not library.propagate:  # its records reach no other handler
        # (an API user's program that called huggingface_hub's disable_propagation(): its handler is its only one)
        return
    for handler in list(library.handlers):
        if type(handler) is logging.StreamHandler:
            library.removeHandler(handler)


def _download_bar(filename: str) -> type:
    """The tqdm class of a download's bar: named after the file (a mirror that sends no Content-Disposition header
    had it named after the blob's hash), off under -q."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    from .. import progress_bar

    quiet = progress_bar.quiet_downloads

    class DownloadBar(hub_tqdm):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["desc"] = filename
            if quiet:
                kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return DownloadBar


def card_weights_path(card: ModelCard) -> Path:
    """Where a card's checkpoint is on disk, downloading it on first use."""
    if card.path is not None:
        return card.path
    if card.package_file is not None:
        return Path(__file__).resolve().parents[1] / "assets" / card.package_file
    assert card.hub_repo and card.file  # guaranteed by ModelCard.from_json
    return fetch_hub_file(card.hub_repo, card.file, card.repo_type)


def prefetch_weights(target: ModelCard | str | Path) -> tuple[Path, str]:
    """Make a model's weights ready for a run that may be offline, with the code and checks a run's load uses: (where
    they are, how: "shipped" in the package, "local" (a user card's file), "cached" (in the Hugging Face cache already),
    "downloaded", or "replaced" (a damaged cached copy downloaded again). The file is read as a run reads it, mapped,
    and its keys and shapes checked against the backbone, so a cached copy damaged since is downloaded again now, or,
    offline, is the run's one line now, not on the offline machine later. Failures are WeightsError (OfflineError for
    a failed download)."""
    if isinstance(target, Path):  # a local checkpoint file or folder (download_target): read and checked, as a load does
        state, _ = read_weights(target, mapped=True)
        backbone_for(state, None, str(target))
        return (weights_in_folder(target) if target.is_dir() else target), "local"
    if isinstance(target, str):
        repo, filename, repo_type, backbone, card = target, "model.safetensors", "model", None, None
    else:
        card = target
        if card.hub_repo is None or card.file is None:
            path = card_weights_path(card)
            if card.package_file is not None:
                return path, "shipped"
            state, _ = read_weights(path, mapped=True)
            backbone_for(state, card.backbone, str(path))
            return path, "local"
        repo, filename, repo_type, backbone = card.hub_repo, card.file, card.repo_type, card.backbone
    cached = cached_hub_file(repo, filename, repo_type)
    path = cached or fetch_hub_file(repo, filename, repo_type, ahead=True)
    how = "cached" if cached is not None else "downloaded"
    try:
        state = _read_download(path, repo, filename, repo_type, mapped=True)
    except WeightsNotFoundError:
        raise
    except WeightsError:
        if cached is None or not _can_download():  # offline: the damaged copy's line, with the command that replaces it
            raise
        # a cached copy damaged since (cut short by a full disk, a copy): what --download is for is to make it ready,
        # so it is downloaded again over it, not left to a line that names another tool's --force-download
        path, how = fetch_hub_file(repo, filename, repo_type, replace=True, ahead=True), "replaced"
        state = _read_download(path, repo, filename, repo_type, mapped=True)
    backbone_for(state, backbone, f"{card.name} ({path})" if card else repo)
    return path, how


def _can_download() -> bool:
    """Whether a download may be tried now: not in offline mode, and the server ($HF_ENDPOINT) reachable."""
    from huggingface_hub import constants

    return not constants.HF_HUB_OFFLINE and hub_reachable(constants.ENDPOINT)


def backbone_for(state: Mapping[str, torch.Tensor], backbone: Optional[str], source: str) -> str:
    """The backbone ``state`` is for: ``backbone`` when it fits, else detected; a WeightsError saying what differs
    when none fits, or when its weights are not floating point. Checks key names, shapes and dtypes only (no model is built)."""
    if backbone is None:
        found = detect_backbone(state)
        if found is None:
            nearest = nearest_backbone(state)
            if nearest is not None:  # a BiRefNet built another way (other decoder options): say what differs
                check_fits(state, nearest, source)
            raise WeightsError(f"{source} matches no BiRefNet backbone ({', '.join(BACKBONES)}); is it a BiRefNet checkpoint?")
        check_dtypes(state, found, source)
        return found
    if backbone not in BACKBONES:
        raise WeightsError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    check_fits(state, backbone, source)
    check_dtypes(state, backbone, source)
    return backbone


def build_model(state: Mapping[str, torch.Tensor], backbone: Optional[str], source: str) -> BiRefNet:
    """Build an eval-mode BiRefNet for ``state``; the backbone is detected when not given. The model takes ``state``'s
    float32 tensors as its own (no copy): a caller that keeps ``state`` shares them."""
    backbone = backbone_for(state, backbone, source)
    # built on the meta device and handed the checkpoint's own tensors (PyTorch's documented way to load one): built
    # on the CPU, every layer was first filled at random only for the checkpoint to overwrite it, 1.1 s for swin_v1_l
    # (`general`) at each start, and each tensor was copied once more, the model twice in memory meanwhile
    with torch.device("meta"):
        model = BiRefNet(backbone)
    integers = _integer_keys(backbone)
    # fp16 files too; an integer index or counter converted to a float with the rest (checked exact) is an integer again:
    # taken as a float, Swin's relative_position_index failed the first frame ("tensors used as indices must be long")
    tensors = {k: (v if not v.is_floating_point() else v.round().to(integers[k]) if k in integers else v.float()).contiguous()
               for k, v in state.items()}  # fmt: skip
    counters = {k: torch.zeros((), dtype=torch.long) for k in model.state_dict() if k.endswith(OPTIONAL_KEY) and k not in tensors}
    model.load_state_dict({**tensors, **counters}, strict=True, assign=True)
    return model.eval()


DEFAULT_RESOLUTION = (1024, 1024)  # what the official general models were trained at


def checkpoint_resolution(path: Path) -> Optional[tuple[int, int]]:
    """The (width, height) a safetensors file says it was trained at (our trainer writes it), if any."""
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            value = (f.metadata() or {}).get("resolution")
        width, height = (int(v) for v in value.lower().split("x")) if value else (None, None)
    except (ValueError, AttributeError, OSError):
        return None
    return (width, height) if width and height else None


def _read_download(path: Path, repo: str, filename: str, repo_type: str = "model", *, mapped: bool = False) -> dict[str, torch.Tensor]:
    """read_checkpoint of a file from the Hugging Face cache; a damaged one (a download cut off, a full disk)
    is an error saying how to fetch it again, which nothing else would: the cache serves it as complete.
    ``mapped``: as ``read_weights``', for a caller that checks the shapes only."""
    try:
        return read_weights(path, mapped=mapped)[0]
    except WeightsNotFoundError:
        raise
    except WeightsError as exc:
        again = _prefetch_command(repo, filename, repo_type)
        again += " --force-download" if again.startswith("hf ") else ""  # birefvid models --download replaces a damaged copy
        unset = " (HF_HUB_OFFLINE unset)" if _offline_mode() else ""
        raise WeightsError(f"{exc}; this is the Hugging Face cache's copy of {repo}/{filename}: "
                           f"fetch it again with `{again}`{unset}") from exc


def card_for_folder(folder: Path) -> Optional[ModelCard]:
    """The card of the published variant a snapshot folder holds, told by its name: the Hugging Face cache's
    ``models--ZhengPeng7--BiRefNet_HR/snapshots/SHA``, or ``BiRefNet_HR`` as `git clone` and `hf download
    --local-dir` name it; None for any other folder."""
    from .registry import list_models

    folder = folder.resolve()
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return card_for_repo(folder.parent.parent.name[len("models--"):].replace("--", "/", 1))
    name = folder.name.lower()
    return next((c for c in list_models().values() if c.hub_repo and c.repo_type == "model" and c.hub_repo.split("/")[-1].lower() == name), None)


def check_model_choice(model: Optional[str] = None, weights: Optional[str | Path] = None) -> None:
    """The refusals ``load_pretrained`` makes before reading any weights (an unknown model name, a missing
    weights file), without loading: for callers that make folders and plans before the model loads (batch)."""
    from .registry import get_model_card

    if model is not None and weights is not None:
        raise ConfigError(f"use either {option('model')} or {option('weights')}, not both")
    if weights is not None:
        if not Path(weights).exists():
            raise WeightsNotFoundError(f"weights file not found: {weights}")
        return
    name = model or "general"
    if Path(name).suffix.lower() in WEIGHTS_FILE_SUFFIXES and not Path(name).exists():  # `--model runs/ft/best.pt`, mistyped
        raise WeightsNotFoundError(f"weights file not found: {name}")
    if "/" in name or Path(name).exists() or Path(name).suffix.lower() in WEIGHTS_FILE_SUFFIXES:
        return  # a file, a snapshot folder or a Hugging Face repo: found or not when it loads
    get_model_card(name)


def check_checkpoint(model: Optional[str] = None, weights: Optional[str | Path] = None, backbone: Optional[str] = None) -> None:
    """Read a local checkpoint and check that it is a BiRefNet's (of ``backbone`` when given), without building
    the model: for callers that load it later, after work a bad file would waste (a watch loads it for its
    first video, maybe hours on; a batch after making its folder and manifest). Published models are not read."""
    path = local_checkpoint(model, weights)
    if path is not None:
        # mapped: read whole, a 900 MB `general`-sized .pth took 1 s and 0.85 GB here, only to be read again to load
        state, _ = read_weights(path, mapped=True)
        backbone_for(state, backbone, str(path))


def load_pretrained(
    model: Optional[str] = None, *, weights: Optional[str | Path] = None, backbone: Optional[str] = None
) -> tuple[BiRefNet, tuple[int, int], str]:
    """Resolve ``--model NAME | owner/repo`` or ``--weights FILE [--backbone NAME]`` to a ready model.

    Returns (eval-mode model on the CPU, native (width, height), a display name).
    """
    from .registry import get_model_card

    if model is not None and weights is not None:  # one would be ignored without a word (Segmenter, export)
        raise ConfigError(f"use either {option('model')} or {option('weights')}, not both")
    if weights is not None:
        path = Path(weights)
        state, trained_at = read_weights(path)
        card = card_for_folder(path) if path.is_dir() else None
        if trained_at is None and card is not None:
            log.info("%s is %s's snapshot: running it at that model's %dx%d", path, card.hub_repo, *card.resolution)
        native = trained_at or (card.resolution if card else DEFAULT_RESOLUTION)
        return build_model(state, backbone, str(path)), native, path.name
    name = model or "general"
    if Path(name).is_file() or Path(name).suffix.lower() in WEIGHTS_FILE_SUFFIXES:
        # a file given as a model (`--model runs/ft/best.pt`, what train's own output suggests): it is one;
        # as an "owner/name" it was looked up on Hugging Face, or called an unknown model
        return load_pretrained(weights=name, backbone=backbone)
    from .registry import list_models

    is_card = name.lower() in {k.lower() for k in list_models()}  # `--model lite` beside a folder called lite/ is the card
    if Path(name).is_dir() and not is_card:  # a Hugging Face snapshot folder (`hf download --local-dir`, a git clone)
        return load_pretrained(weights=name, backbone=backbone)
    card = card_for_repo(name) if "/" in name else None  # a published variant named by its repo: its card's size
    if "/" in name and card is None:  # any other Hugging Face repo id
        path = fetch_hub_file(name, "model.safetensors")
        return build_model(_read_download(path, name, "model.safetensors"), backbone, name), DEFAULT_RESOLUTION, name
    card = card or get_model_card(name)
    path = card_weights_path(card)
    state = _read_download(path, card.hub_repo, card.file, card.repo_type) if card.hub_repo and card.file else read_checkpoint(path)
    return build_model(state, backbone or card.backbone, f"{card.name} ({path})"), card.resolution, card.name

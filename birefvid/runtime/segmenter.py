"""The Segmenter: uint8 RGB frames in, float alpha in [0, 1] at each frame's own size out.

Preprocessing (resize to the inference size, ImageNet normalisation) runs on the model's
device, so on a GPU only uint8 pixels cross the bus. Other picture forms (PIL, BGR, float, paths)
are turned into uint8 RGB by ``pictures.as_rgb`` first.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..backends import choose_backend, choose_precision, open_engine
from ..backends.engines import Engine
from ..backends.memory import is_out_of_memory, memory_said
from ..caller import warn
from ..errors import ConfigError, option
from ..job import MIN_SIDE, parse_resolution
from ..models.inputs import normalize
from ..models.weights import load_pretrained
from .cores import fit_torch_threads
from .device import pick_device, pick_dtype
from .pictures import Picture, as_rgb, is_picture

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

EACH_BATCH = 4  # pictures a model call at most in segment_each (and __call__ with a list): the file pipeline's batch on CUDA
# Out-of-memory advice for fewer frames a model call: the caller's own call is the batch (``seg(frames)``,
# ``predict``), so fewer frames a call; ``segment_each`` batches a list itself, so one picture a call; only where a
# pipeline batches frames (``batch_size_applies``: process, batch, bench) does a batch_size option apply
_FEWER_FRAMES: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("birefvid_fewer_frames", default="fewer frames a call")


@contextlib.contextmanager
def batch_size_applies() -> Iterator[None]:
    """Within this block (on this thread) out-of-memory advice names the ``batch_size`` option (``--batch-size``)."""
    token = _FEWER_FRAMES.set(None)
    try:
        yield
    finally:
        _FEWER_FRAMES.reset(token)


class DeviceOutOfMemory(ConfigError, torch.cuda.OutOfMemoryError):
    """The model did not fit the device: one line for the CLI (a ConfigError), and still the OutOfMemoryError an
    API caller catches to retry with fewer or smaller pictures (a plain ConfigError slipped past that ``except``)."""


# one picture (see ``pictures.as_rgb``), a sequence of them, an (N, H, W, C) array or an (N, 3, H, W) tensor
FramesLike = Union[Picture, Sequence[Picture], np.ndarray, torch.Tensor]


def _either(fixes: Sequence[str]) -> str:
    """``a, b or c``: the fixes an out-of-memory line offers."""
    return f"{', '.join(fixes[:-1])} or {fixes[-1]}" if len(fixes) > 1 else fixes[0]


def aspect_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """Inference (h, w) that keeps the frame's aspect: same pixel count as ``target``, sides multiples of 32."""
    scale = (target[0] * target[1] / (height * width)) ** 0.5
    return max(MIN_SIDE, round(height * scale / 32) * 32), max(MIN_SIDE, round(width * scale / 32) * 32)


class Segmenter:
    """Runs BiRefNet on batches of frames with a chosen device, backend, precision and inference size.

    ``Segmenter("general")`` loads a published model by name (``birefvid.list_models()``: tiny,
    general, lite, matting, ...), ``weights=`` a local checkpoint (with ``backbone=``), ``module=``
    a model already built. ``device``: auto, cpu, cuda, mps; ``precision``: auto, fp32, fp16, bf16;
    ``resolution``: the inference size, N or "WxH" (default: the model's own); ``backend``: auto,
    torch, torch-compile, openvino, onnxruntime. ``seg(picture)`` gives masks, ``seg.cutout(picture)``
    an RGBA PIL image; ``birefvid.api.iter_masks`` gives a video's.

    One Segmenter may be called from several threads: calls take turns (a lock), since OpenVINO's
    compiled model serves one request at a time ("Infer Request is busy") and the model already
    uses every core. For work in parallel on a GPU, give each thread its own Segmenter.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        *,
        weights: Optional[str] = None,
        backbone: Optional[str] = None,
        device: str = "auto",
        precision: str = "auto",
        resolution: Union[int, str, Sequence[int], None] = None,
        keep_aspect: bool = False,
        module: Optional[torch.nn.Module] = None,
        backend: str = "auto",
    ) -> None:
        self.device = pick_device(device)
        self.backend = choose_backend(backend, self.device)
        self.precision = choose_precision(precision, self.backend, self.device)
        self.dtype = pick_dtype(self.precision, self.device)
        if module is not None:
            net, native = module.eval(), (1024, 1024)
            self.name = f"{type(module).__name__}({getattr(module, 'backbone_name', 'custom')})"
        else:
            net, native, self.name = load_pretrained(model, weights=weights, backbone=backbone)
        self.resolution: tuple[int, int] = parse_resolution(resolution) or native
        self.keep_aspect = keep_aspect
        self.backbone = getattr(net, "backbone_name", "custom")
        if self.device.type == "cpu":
            fit_torch_threads()  # a container's CPU quota: a thread per host core only ran into its throttling
        self.engine = self._open_engine(net, self.backend, self.precision)
        self.model = net  # the torch module (the ONNX engines export from it)
        self._fp32_engine: Optional[Engine] = None
        self._lock = threading.Lock()  # one model call at a time: see the class docstring
        log.info("segmenter %s on %s, %s %s, %dx%d", self.name, self.device, self.backend, self.precision, *self.resolution)

    def with_backend(self, backend: str) -> "Segmenter":
        """A twin that shares this one's model and settings but runs on ``backend`` (e.g. torch, to time sizes without exporting)."""
        import copy

        twin = copy.copy(self)
        twin.backend = choose_backend(backend, self.device)
        twin.precision = choose_precision("auto" if twin.backend != self.backend else self.precision, twin.backend, self.device)
        model = self.model
        casts = twin.precision == "fp16" or (twin.precision == "bf16" and self.device.type != "cpu")  # CPU bf16 is autocast
        if twin.backend.startswith("torch") and casts:
            # PyTorch engines cast the module in place (fp16 on a GPU); the one this segmenter
            # exports from must stay fp32, so the twin gets its own copy
            model = copy.deepcopy(model)
        twin.model = model
        twin.engine = twin._open_engine(model, twin.backend, twin.precision)
        twin._fp32_engine = None
        twin._lock = threading.Lock()  # its own engine: it need not wait for this one's calls
        return twin

    def _open_engine(self, net: torch.nn.Module, backend: str, precision: str) -> Engine:
        """``open_engine`` on this segmenter's device, a device too small for the model one line (``_loading_out_of_memory``)."""
        try:
            return open_engine(net, backend, precision, self.device)
        except Exception as exc:  # torch.OutOfMemoryError as the weights move to the device; a MemoryError on the CPU
            if isinstance(exc, DeviceOutOfMemory) or not is_out_of_memory(exc):
                raise
            raise self._loading_out_of_memory(exc, precision) from exc

    def prepare(self, height: int, width: int, batch_size: int = 1) -> None:
        """Get ready for batches of frames of this size now (the ONNX engines export and compile), so timing excludes it.

        Out of memory here is the model's load (an ONNX Runtime session puts its weights on the device), said as one.
        """
        prepare = getattr(self.engine, "prepare", None)
        if prepare is None:
            return
        try:
            prepare(self.inference_size(height, width), batch_size)
        except Exception as exc:
            if isinstance(exc, DeviceOutOfMemory) or not is_out_of_memory(exc):
                raise
            raise self._loading_out_of_memory(exc, self.precision) from exc

    def needs_export(self, height: int, width: int) -> bool:
        """True when frames of this size need a first export before they run (an ONNX engine with none cached, 10-60 s)."""
        exported = getattr(self.engine, "exported", None)
        return exported is not None and not exported(self.inference_size(height, width))

    def file_batch_size(self, height: int, width: int) -> int:
        """Frames per model call for a file of this frame size: 4 on CUDA; on the CPU as many as the
        engine runs at once (OpenVINO's two streams, compiled now), else 1.

        Measured end to end on 2 cores (``process``, 720p, each setting in its own process,
        alternating): Swin-T at 512² 1.45 frames/s on two streams against 1.24 one frame at a time
        (1.18x, and 20% less CPU a frame); ``tiny`` at 256², green, 15.5-15.6 against 14.8-15.0
        (three pairs; 14.7, 15.0 against 14.5, 14.3 in two more), alpha 13.6-13.7 against
        12.2-13.1, at 1080p 13.1-13.3 against 12.1-13.2, and at 512² 4.2-4.4 against 3.8-4.3.
        (Before the work around the model got cheaper, ``tiny`` had been faster one frame at a
        time: the pipeline filled the gaps two threads leave.)
        """
        if self.device.type == "cuda":
            return 4
        in_flight = getattr(self.engine, "frames_in_flight", None)
        if in_flight is None:
            return 1
        return in_flight(self.inference_size(height, width))

    def inference_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the model sees for a frame of this size."""
        if self.keep_aspect:
            return aspect_size(height, width, (self.resolution[1], self.resolution[0]))
        return self.resolution[1], self.resolution[0]

    def preprocess(self, images: torch.Tensor, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> normalised (N, 3, h, w) at the inference size, on the device, in ``dtype``.

        Antialiased bilinear, as PIL's resize in BiRefNet's own inference. On the CPU the bytes are
        resized (torch's uint8 kernel, SIMD for channel-last frames as decoded) and only the small
        result becomes float: 5.6 -> 0.9 ms a 720p frame on one core, 11.9 -> 1.5 ms at 1080p, on
        the model's thread, for an input within one grey level of the float resize. CUDA resizes
        floats (its antialiased kernel takes no uint8).
        """
        x = images.to(self.device, non_blocking=True)
        size = self.inference_size(*x.shape[2:])
        if tuple(x.shape[2:]) != size and x.device.type == "cpu" and x.dtype == torch.uint8:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x.float().div_(255.0)
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return normalize(x).to(dtype or self.engine.input_dtype)

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, *, frame_size: bool = True) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float32 alpha (N, 1, H, W) in [0, 1], on the model's device.

        ``frame_size=False`` returns the alpha at the inference size instead, for callers that
        work at the mask's resolution and upsample once at the end (live mode).
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"Segmenter.predict expects uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        height, width = images.shape[2:]
        with self._lock:
            try:
                x = self.preprocess(images)
                logits = self.engine(x)
                if not torch.isfinite(logits).all():
                    logits = self._recompute_fp32(images)
            except Exception as exc:  # torch's OutOfMemoryError (CUDA, MPS), its CPU RuntimeError, ONNX Runtime's, a MemoryError
                if isinstance(exc, DeviceOutOfMemory) or not is_out_of_memory(exc):
                    raise
                raise self.out_of_memory(exc, images.shape) from exc
        alpha = torch.sigmoid(logits.float())
        if frame_size and tuple(alpha.shape[2:]) != (height, width):
            alpha = F.interpolate(alpha, size=(height, width), mode="bilinear", align_corners=False)
        return alpha.clamp_(0.0, 1.0)

    def out_of_memory(self, exc: BaseException, shape: torch.Size, doing: str = "running the model",
                      precision: Optional[str] = None) -> DeviceOutOfMemory:
        """One line for a device too small for these settings (``image`` showed torch's traceback), with what makes it fit.

        ``shape`` is the uint8 frames' (N, 3, H, W); ``doing`` what ran out (``bench`` says "timing the model");
        ``precision`` the precision it ran in where ``--precision`` does not set it (``bench``'s eager fp32 reference):
        fp16 is then no advice. Only fixes that can apply are offered: no smaller ``--resolution`` below the least
        one, no fp16 off CUDA; where the settings cannot shrink further, another device or freeing memory is left."""
        frames, (h, w) = shape[0], self.inference_size(*shape[2:])
        fixes = [_FEWER_FRAMES.get() or option("batch_size", 1)] if frames > 1 else []
        smaller_size = self.resolution[0] * self.resolution[1] > MIN_SIDE * MIN_SIDE  # each side is at least MIN_SIDE
        if smaller_size:
            fixes.append(f"a smaller {option('resolution')}")
        if precision is None and self.precision == "fp32" and self.device.type == "cuda":
            fixes.append(option("precision", "fp16"))
        if not smaller_size:
            fixes += self._elsewhere()
        return DeviceOutOfMemory(f"{self.device} ran out of memory {doing} on {frames} frame{'s' if frames > 1 else ''} "
                           f"at {w}x{h} ({memory_said(exc)}); try {_either(fixes)}")  # fmt: skip

    def _elsewhere(self) -> list[str]:
        """Fixes beyond the model's own settings. On the CPU the machine's memory is short: moving to the CPU or
        freeing a GPU is no advice there."""
        if self.device.type == "cpu":
            return ["freeing the machine's memory (closing what else runs)"]
        return [option("device", "cpu"), "freeing the GPU's memory" + (" (nvidia-smi lists what holds it)" if self.device.type == "cuda" else "")]

    def _loading_out_of_memory(self, exc: BaseException, precision: str) -> DeviceOutOfMemory:
        """One line for a device the model's weights do not fit (``--model general`` on a 4 GB card was torch's
        traceback, exit 1), with what makes them fit: frame-size options do not help before a frame is seen."""
        fixes = []
        if self.backbone.startswith("swin_v1_l"):  # general, matting, HR, ...: Swin-L, several times the weights of lite's Swin-T
            fixes.append(f"a smaller model ({option('model', 'lite')})")
        if precision == "fp32" and self.device.type == "cuda":
            fixes.append(option("precision", "fp16"))
        fixes += self._elsewhere()
        return DeviceOutOfMemory(f"{self.device} ran out of memory loading the model {self.name} ({memory_said(exc)}); "
                                 f"try {_either(fixes)}")  # fmt: skip

    def _recompute_fp32(self, images: torch.Tensor) -> torch.Tensor:
        """Low precision overflowed: run this batch again in fp32 (and say so once)."""
        if self.precision == "fp32":
            raise FloatingPointError("BiRefNet produced non-finite output in fp32; the weights or input are broken")
        warn(f"non-finite output in {self.precision}; recomputing this batch in fp32 (use {option('precision', 'fp32')} to avoid this)",
             RuntimeWarning)
        if self._fp32_engine is None:
            self._fp32_engine = self.engine.fp32()
        return self._fp32_engine(self.preprocess(images, torch.float32))

    def segment_each(self, frames: Sequence[Picture], *, bgr: bool = False) -> list[np.ndarray]:
        """Pictures of any sizes and forms (see ``__call__``) -> one (H, W) float32 alpha each; same-sized ones batch together."""
        if is_picture(frames):
            raise ConfigError("segment_each takes a list of pictures; for one picture call the Segmenter, or pass [picture]")
        try:
            items = list(frames)
        except TypeError:
            raise TypeError(f"expected a picture or a list of pictures, got {type(frames).__name__}") from None
        arrays = [as_rgb(a, bgr=bgr, name=f"frame {i}")[0] for i, a in enumerate(items)]
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(arrays)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, a in enumerate(arrays):
            by_size.setdefault(a.shape[:2], []).append(i)
        token = _FEWER_FRAMES.set("one picture a call")  # its batches are the caller's list, up to EACH_BATCH
        try:
            for same_size in by_size.values():
                # a few at a time: a hundred same-sized pictures went to the model as one batch, out of a
                # GPU's memory (general at 1024² holds a handful), whose error then named a batch size the caller cannot set
                for start in range(0, len(same_size), EACH_BATCH):
                    indices = same_size[start : start + EACH_BATCH]
                    batch = torch.from_numpy(np.stack([arrays[i] for i in indices])).permute(0, 3, 1, 2)
                    for i, alpha in zip(indices, self.predict(batch)[:, 0].cpu().numpy()):
                        out[i] = alpha
        finally:
            _FEWER_FRAMES.reset(token)
        return out

    def __call__(self, frames: FramesLike, *, bgr: bool = False) -> np.ndarray:
        """Same-sized pictures -> their alphas, (N, H, W) float32 in [0, 1] (N = 1 for one picture).

        A picture is a PIL image (RGB, RGBA, L, P, ...), an H×W, H×W×3 or H×W×4 array (uint8,
        uint16, or float in [0, 1]; ``bgr=True`` for OpenCV's BGR order), a (3, H, W) tensor or an
        image file's path; also a list of them, an (N, H, W, C) array, or an (N, 3, H, W) tensor
        (uint8, or float in [0, 1], which stays on its device). Pictures of different sizes: ``segment_each``.
        """
        if isinstance(frames, torch.Tensor) and frames.ndim == 4:  # the one batch it is: fewer frames a call fit
            return self.predict(_tensor_batch(frames, bgr))[:, 0].cpu().numpy()
        if is_picture(frames):
            frames = [frames]
        alphas = self.segment_each(frames, bgr=bgr)  # type: ignore[arg-type]
        if len({a.shape for a in alphas}) > 1:
            raise ConfigError("frames of different sizes: use Segmenter.segment_each, which returns a list")
        return np.stack(alphas) if alphas else np.zeros((0, 0, 0), np.float32)

    def cutout(self, picture: Picture, *, bgr: bool = False, foreground: bool = True) -> "Image.Image":
        """One picture -> its RGBA cut-out as a PIL image (transparent-background's ``process(img, type="rgba")``).

        ``foreground=True`` estimates the subject's own colour at soft edges (no halo of the old
        background), as ``birefvid image`` does; a picture's own transparency is kept.
        """
        from PIL import Image

        from ..compose.compositor import Compositor

        rgb, own_alpha = as_rgb(picture, bgr=bgr)
        if not rgb.flags.writeable:  # e.g. np.asarray(pil_image): torch warns about tensors over read-only memory
            rgb = rgb.copy()
        batch = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
        alphas = self.predict(batch, frame_size=False)  # the compositor brings the matte to the picture's size
        coverage = None if own_alpha is None else torch.from_numpy(own_alpha)[None, None].to(alphas.device).float().div_(255.0)
        pixels = Compositor("alpha", foreground=foreground)(batch.to(alphas.device), alphas, None, coverage)
        return Image.fromarray(np.ascontiguousarray(pixels[0].permute(1, 2, 0).cpu().numpy()), "RGBA")


def _tensor_batch(frames: torch.Tensor, bgr: bool) -> torch.Tensor:
    """An (N, 3, H, W) tensor -> uint8 on its own device: floats must be in [0, 1] (torchvision's ToTensor)."""
    if frames.shape[1] != 3:
        raise ConfigError(f"a tensor batch must be (N, 3, H, W), got shape {tuple(frames.shape)}")
    if frames.is_floating_point():
        if frames.numel() and not (torch.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1):
            raise ConfigError("a float tensor must be in [0, 1]: divide 0-255 values by 255, or pass uint8")
        frames = frames.mul(255.0).round_().to(torch.uint8)
    elif frames.dtype != torch.uint8:
        raise ConfigError(f"a tensor batch must be uint8 or float in [0, 1], got {frames.dtype}")
    return frames.flip(1) if bgr else frames

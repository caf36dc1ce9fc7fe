"""Segmenter: sizes, input forms, precisions, the non-finite guard and device/resolution errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birefvid.errors import ConfigError
from birefvid.models import BiRefNet
from birefvid.runtime import Segmenter, parse_resolution
from birefvid.runtime.segmenter import aspect_size
from process_fixtures import OverflowsInHalf


@pytest.fixture(scope="module")
def b0(pvt_b0_state):
    model = BiRefNet("pvt_v2_b0")
    model.load_state_dict(pvt_b0_state)
    return model


def _frames(n=2, size=(37, 53), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def test_alpha_comes_back_at_each_frames_size(b0):
    seg = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32")
    frames = _frames(2, (37, 53)) + _frames(1, (20, 30), seed=1)
    alphas = seg.segment_each(frames)
    assert [a.shape for a in alphas] == [(37, 53), (37, 53), (20, 30)]
    assert all(a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1 for a in alphas)
    batch = seg(np.stack(frames[:2]))  # (N, H, W, 3) array
    tensor = seg(torch.from_numpy(np.stack(frames[:2])).permute(0, 3, 1, 2))
    np.testing.assert_allclose(batch, np.stack(alphas[:2]), atol=1e-6)
    np.testing.assert_allclose(tensor, batch, atol=1e-6)
    with pytest.raises(ValueError, match="different sizes"):
        seg(frames)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_on_cpu_is_finite_and_close(b0, precision):
    frames = _frames(1, (64, 64))
    ref = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32")(frames)
    low = Segmenter(module=BiRefNet("pvt_v2_b0").eval(), resolution=64, device="cpu", precision=precision)
    low.model.load_state_dict(b0.state_dict())
    out = low(frames)
    # CPU bf16 runs under autocast (weights stay fp32, accuracy-sensitive ops too); fp16 casts the weights
    weights = {"bf16": torch.float32, "fp16": torch.float16}[precision]
    assert low.model.bb.patch_embed1.proj.weight.dtype == weights
    assert low.engine.autocast == (precision == "bf16")
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.05


def test_non_finite_output_is_recomputed_in_fp32_with_a_warning():
    frames = _frames(1, (64, 64))
    seg = Segmenter(module=OverflowsInHalf(), resolution=64, device="cpu", precision="bf16")
    with pytest.warns(RuntimeWarning, match="recomputing this batch in fp32"):
        out = seg(frames)
    expected = Segmenter(module=OverflowsInHalf(), resolution=64, device="cpu", precision="fp32")(frames)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_the_fp32_warning_names_the_callers_line():
    """It named torch/utils/_contextlib.py:124 (predict's inference_mode wrapper), not the user's code."""
    seg = Segmenter(module=OverflowsInHalf(), resolution=64, device="cpu", precision="bf16")
    with pytest.warns(RuntimeWarning, match="recomputing this batch in fp32") as called:
        seg(_frames(1, (64, 64)))
    with pytest.warns(RuntimeWarning, match="recomputing this batch in fp32") as predicted:
        seg.predict(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert [w.filename for w in (*called, *predicted)] == [__file__, __file__]


def test_non_finite_in_fp32_is_an_error():
    class AlwaysNan(OverflowsInHalf):
        def forward(self, x):
            return x[:, :1] * float("nan")

    with pytest.raises(FloatingPointError, match="non-finite output in fp32"):
        Segmenter(module=AlwaysNan(), resolution=64, device="cpu", precision="fp32")(_frames(1, (64, 64)))


def test_keep_aspect_keeps_pixel_budget_and_multiples_of_32(b0):
    assert aspect_size(1080, 1920, (1024, 1024)) == (768, 1376)
    assert aspect_size(100, 100, (64, 64)) == (64, 64)
    seg = Segmenter(module=b0, resolution=64, keep_aspect=True, device="cpu")
    assert seg.inference_size(48, 192) == (64, 128)  # short side held at the 64 px minimum
    assert seg(_frames(1, (48, 192))).shape == (1, 48, 192)


@pytest.mark.parametrize("value,expected", [(512, (512, 512)), ("1024", (1024, 1024)), ("768x432", None), ("32", None), ("768x448", (768, 448)), ((96, 64), (96, 64))])
def test_parse_resolution(value, expected):
    if expected is None:
        with pytest.raises(ConfigError, match="multiples of 32"):
            parse_resolution(value)
    else:
        assert parse_resolution(value) == expected


@pytest.mark.parametrize("bad", ["big", "12x", "1x2x3"])
def test_parse_resolution_rejects_garbage(bad):
    with pytest.raises(ConfigError, match="not N or WxH"):
        parse_resolution(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_requested_without_cuda_is_a_config_error(b0):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Segmenter(module=b0, device="cuda")


def test_unknown_device_and_precision(b0):
    with pytest.raises(ConfigError, match="unknown device"):
        Segmenter(module=b0, device="tpu9")
    with pytest.raises(ConfigError, match="unknown precision"):
        Segmenter(module=b0, device="cpu", precision="fp8")


def test_rejects_frames_it_would_misread(b0):
    seg = Segmenter(module=b0, resolution=64, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        seg([np.zeros((8, 8, 3), np.int32)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # floats are read as 0-1 (tests/test_api_pictures.py); 0-255 ones are refused
        seg([np.full((8, 8, 3), 200.0, np.float32)])


@pytest.mark.parametrize("size", [(180, 320), (45, 40)])  # shrunk to the inference size, and grown to it
def test_cpu_preprocessing_resizes_the_bytes_within_a_grey_level_of_the_float_resize(b0, size):
    import torch.nn.functional as F

    from birefvid.models.inputs import IMAGENET_STD, normalize

    seg = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32")
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (2, *size, 3), dtype=torch.uint8, generator=g).permute(0, 3, 1, 2)  # channel-last, as decoded
    got = seg.preprocess(frames)
    want = normalize(F.interpolate(frames.float() / 255.0, size=(64, 64), mode="bilinear", align_corners=False, antialias=True))
    assert got.shape == (2, 3, 64, 64) and got.dtype == torch.float32
    grey_level = 1.0 / 255.0 / min(IMAGENET_STD)
    assert (got - want).abs().max() <= grey_level + 1e-6
    assert (got - want).abs().mean() <= grey_level / 2


def test_a_low_precision_torch_twin_leaves_the_shared_model_fp32(pvt_b0_state, monkeypatch):
    """live's size calibration times a PyTorch twin; on a GPU that twin runs fp16, and the model
    the ONNX engine exports from must not be cast under it."""
    model = BiRefNet("pvt_v2_b0")
    model.load_state_dict(pvt_b0_state)
    seg = Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="onnxruntime")
    monkeypatch.setattr("birefvid.runtime.segmenter.choose_precision", lambda *a: "fp16")  # as on CUDA
    twin = seg.with_backend("torch")
    assert twin.backend == "torch" and next(twin.model.parameters()).dtype == torch.float16
    assert {p.dtype for p in seg.model.parameters()} == {torch.float32}
    fp32_twin = Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="onnxruntime")
    monkeypatch.setattr("birefvid.runtime.segmenter.choose_precision", lambda *a: "fp32")
    assert fp32_twin.with_backend("torch").model is model  # nothing to cast: shared, not copied


@pytest.mark.parametrize("count", [1, 2])
def test_a_gpu_index_past_the_gpus_present_is_a_config_error(b0, monkeypatch, count):
    """--device cuda:N with N past the GPUs (a one-GPU box, or CUDA_VISIBLE_DEVICES=1) says so before
    anything runs, instead of CUDA's 'invalid device ordinal' traceback at the first tensor.
    Only the selection logic is exercised: no CUDA call is made."""
    from birefvid.runtime.device import pick_device

    _fake_gpus(monkeypatch, count, (8, 0))
    with pytest.raises(ConfigError, match=rf"cuda:{count} requested but this process sees {count} GPU.*only cuda:0"):
        pick_device(f"cuda:{count}")
    assert pick_device(f"cuda:{count - 1}") == torch.device(f"cuda:{count - 1}")
    assert pick_device("cuda") == torch.device("cuda")


@pytest.mark.parametrize("name", ["xpu", "meta"])
def test_a_device_type_torch_knows_but_birefvid_does_not_run_on_is_one_line(name):
    """--device xpu or meta went through pick_device and failed later with a torch traceback."""
    from birefvid.runtime.device import pick_device

    with pytest.raises(ConfigError, match=rf"'{name}' is not supported; use auto, cpu, cuda, cuda:N or mps"):
        pick_device(name)


def _fake_gpus(monkeypatch, count: int, capability: tuple[int, int], arch: tuple[str, ...] = ("sm_75", "sm_80", "sm_86", "sm_90")) -> None:
    """torch.cuda as on a machine with ``count`` GPUs of ``capability`` and a PyTorch build for ``arch``: no CUDA call is made."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Tesla V100-SXM2-16GB")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch))
    monkeypatch.setattr(torch.version, "cuda", "13.0")


def test_a_gpu_this_pytorch_build_has_no_kernels_for_is_refused_or_skipped(monkeypatch, caplog):
    """PyPI's CUDA 13 wheel runs sm_75 and up: on a V100 (sm_70) CUDA was "available", auto picked it and the
    first kernel failed with "no kernel image is available for execution on the device"."""
    from birefvid.runtime.device import pick_device

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr("birefvid.runtime.device._SAID", set(), raising=False)  # said once a process: not by another test first
    _fake_gpus(monkeypatch, 1, (7, 0))
    with pytest.raises(ConfigError, match=r"GPU cuda:0 \(Tesla V100-SXM2-16GB, sm_70\) has no kernels in this PyTorch build \(it runs sm_75 "):
        pick_device("cuda")
    assert pick_device("auto") == torch.device("cpu")
    assert "sm_70) has no kernels in this PyTorch build" in caplog.text and "running on the CPU" in caplog.text
    _fake_gpus(monkeypatch, 1, (8, 9))  # an sm_80/86 cubin runs on 8.9 (same major, higher minor)
    assert pick_device("auto") == torch.device("cuda") and pick_device("cuda:0") == torch.device("cuda:0")
    _fake_gpus(monkeypatch, 1, (7, 0), arch=("sm_80", "compute_70"))  # PTX for 7.0 is compiled for it when loaded
    assert pick_device("cuda") == torch.device("cuda")


def test_running_on_the_cpu_instead_of_an_unusable_gpu_is_said_once(monkeypatch, caplog):
    """`batch --device auto` checks the device, then its model picks it: the line was printed twice."""
    from birefvid.runtime.device import pick_device

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr("birefvid.runtime.device._SAID", set(), raising=False)
    _fake_gpus(monkeypatch, 1, (7, 0))
    assert [pick_device("auto"), pick_device("auto")] == [torch.device("cpu")] * 2
    assert [r.getMessage().endswith("running on the CPU") for r in caplog.records] == [True]


def test_a_device_out_of_memory_is_one_line_saying_what_makes_it_fit():
    """A GPU too small for the batch or size: `birefvid image` showed torch's traceback, `process` torch's message alone."""

    class OutOfMemory(torch.nn.Module):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB. GPU 0 has a total capacity "
                                              "of 7.63 GiB of which 1.12 GiB is free. Including non-PyTorch memory, ...")  # fmt: skip

    seg = Segmenter(module=OutOfMemory(), resolution=128, device="cpu", precision="fp32", backend="torch")
    with pytest.raises(ConfigError, match=r"cpu ran out of memory running the model on 2 frames at 128x128 \(CUDA out of memory\. "
                                          r"Tried to allocate 3\.00 GiB.* is free\); try one picture a call or a smaller resolution$"):  # fmt: skip
        seg(_frames(2, (48, 64)))  # batch_size is no option of the Segmenter's: it named one the caller cannot set
    with pytest.raises(ConfigError, match=r"on 3 frames at 128x128 .*; try fewer frames a call or a smaller resolution$"):
        seg(torch.zeros((3, 3, 48, 64), dtype=torch.uint8))  # a tensor goes as the one batch it is
    with pytest.raises(ConfigError, match=r"on 2 frames at 128x128 .*; try fewer frames a call or a smaller resolution$"):
        seg.predict(torch.zeros((2, 3, 48, 64), dtype=torch.uint8))  # as predict, which takes no batch_size either
    with pytest.raises(torch.cuda.OutOfMemoryError):  # what an API caller catches to go on with fewer pictures
        seg(_frames(2, (48, 64)))


def test_out_of_memory_in_process_video_names_its_batch_size(tmp_path):
    """In a pipeline the frames a call are its batch_size, which the advice names (a Segmenter's own calls do not)."""
    from birefvid.api import process_video
    from media import make_video

    class OutOfMemory(torch.nn.Module):
        def forward(self, x):
            torch.empty(1 << 55, dtype=torch.uint8)

    clip = make_video(tmp_path / "in.mp4", 4, with_audio=False)
    seg = Segmenter(module=OutOfMemory(), resolution=128, device="cpu", precision="fp32", backend="torch")
    with pytest.raises(ConfigError, match=r"on 2 frames at 128x128 .*; try batch_size=1 or a smaller resolution$"):
        process_video(clip.path, tmp_path / "out.webm", kind="alpha", segmenter=seg, batch_size=2, smooth="none")
    assert not (tmp_path / "out.webm").exists()


@pytest.mark.parametrize(
    ("resolution", "frames", "advice"),
    [(64, 2, "one picture a call or freeing the machine's memory (closing what else runs)"),
     (64, 1, "freeing the machine's memory (closing what else runs)"),
     ("96x64", 1, "a smaller resolution")],
)  # fmt: skip
def test_out_of_memory_advice_at_the_least_resolution_offers_only_what_can_help(resolution, frames, advice):
    """At the least resolution (64) the line still said "try a smaller resolution", which the options refuse: it
    offers what is left (a smaller batch, freeing memory); above it, in either side, a smaller resolution."""

    class OutOfMemory(torch.nn.Module):
        def forward(self, x):
            torch.empty(1 << 55, dtype=torch.uint8)  # torch's own CPU allocator failing, real

    seg = Segmenter(module=OutOfMemory(), resolution=resolution, device="cpu", precision="fp32", backend="torch")
    with pytest.raises(ConfigError) as raised:
        seg(_frames(frames, (48, 64)))
    assert str(raised.value).endswith(f"); try {advice}")

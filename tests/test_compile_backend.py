"""``--backend torch-compile``: torch.compile (Inductor) of the PyTorch model, per input shape.

A small convolutional net stands in for BiRefNet: compiling BiRefNet itself takes minutes on
this CPU. What is checked is the engine's own behaviour: same alphas as eager PyTorch, compile
time reported, a short last batch padded instead of compiled again, and eager PyTorch (with one
warning) when compiling fails.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from birefvid.backends import choose_backend, choose_precision
from birefvid.backends.engines import CompiledTorchEngine, open_engine
from birefvid.job import InferenceSpec
from birefvid.runtime import Segmenter
from system_tools import need_binary

CPU = torch.device("cpu")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1)).eval()


def _frames(n: int, size: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))


@pytest.fixture
def compiler_present():
    need_binary("g++", "g++")  # Inductor builds its CPU kernels with it; skips locally, fails under CI=true


def test_backend_name_resolves_on_cpu_and_takes_torch_precisions():
    assert choose_backend("torch-compile", CPU) == "torch-compile"
    assert choose_precision("fp32", "torch-compile", CPU) == "fp32"
    assert choose_precision("auto", "torch-compile", CPU) == choose_precision("auto", "torch", CPU)
    InferenceSpec(backend="torch-compile").validate()
    assert isinstance(open_engine(_net(), "torch-compile", "fp32", CPU), CompiledTorchEngine)


def test_compiled_alphas_equal_eager(compiler_present):
    eager = Segmenter(module=_net(), device="cpu", precision="fp32", backend="torch", resolution=64)
    compiled = Segmenter(module=_net(), device="cpu", precision="fp32", backend="torch-compile", resolution=64)
    assert compiled.backend == "torch-compile"
    compiled.prepare(64, 64, batch_size=2)
    assert compiled.engine.export_seconds > 0  # the compile, reported where exports report theirs
    frames = _frames(2)
    got = compiled.predict(frames)
    assert got.shape == (2, 1, 64, 64)
    assert torch.allclose(got, eager.predict(frames), atol=1e-5)


def test_a_short_last_batch_is_padded_not_compiled_again():
    compiled_for: list[tuple[int, ...]] = []

    def recording_backend(graph_module, example_inputs):  # a real torch.compile backend that runs the graph eagerly
        compiled_for.extend(tuple(t.shape) for t in example_inputs if t.ndim == 4 and t.shape[-1] >= 16)  # the frames, not the 3x3 weights
        return graph_module.forward

    engine = CompiledTorchEngine(_net(), CPU, "fp32", compiler=recording_backend)
    eager = _net()
    for n in (4, 3, 4, 1):  # full batches and a video's shorter last batch
        x = torch.randn(n, 3, 16, 16)
        out = engine(x)
        assert out.shape == (n, 1, 16, 16)
        with torch.no_grad():
            assert torch.allclose(out, eager(x), atol=1e-6)
    engine(torch.randn(4, 3, 16, 16).to(memory_format=torch.channels_last))  # as preprocessed decoded frames come
    assert compiled_for == [(4, 3, 16, 16)]
    assert engine.compiled_batches == {(16, 16, torch.float32): 4}
    engine(torch.randn(1, 3, 32, 32))  # another frame size compiles for itself
    assert compiled_for == [(4, 3, 16, 16), (1, 3, 32, 32)]


def test_a_failed_compile_falls_back_to_eager_with_one_warning():
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no compiler for this op")

    engine = CompiledTorchEngine(_net(), CPU, "fp32", compiler=broken_backend)
    eager = _net()
    x = torch.randn(2, 3, 16, 16)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*running eager PyTorch"):
        out = engine(x)
    with torch.no_grad():
        assert torch.allclose(out, eager(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: later calls run eager quietly
        assert torch.allclose(engine(x), out)
    with pytest.raises(RuntimeError):  # bad input still fails loudly
        engine(torch.randn(2, 5, 16, 16))


def test_the_failed_compile_warning_names_the_callers_line():
    """Through the Segmenter it named birefvid/runtime/segmenter.py (a fixed stacklevel=2), not the user's code."""

    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no compiler for this op")

    warned = []
    for call in ("__call__", "predict"):
        seg = Segmenter(module=_net(), device="cpu", precision="fp32", backend="torch", resolution=64)
        seg.engine = CompiledTorchEngine(seg.model, CPU, "fp32", compiler=broken_backend)  # the engine a torch-compile run opens
        with pytest.warns(RuntimeWarning, match="torch.compile failed") as caught:
            seg(_frames(1).permute(0, 2, 3, 1).numpy()[0]) if call == "__call__" else seg.predict(_frames(1))
        warned += [w.filename for w in caught]
    assert warned == [__file__, __file__]

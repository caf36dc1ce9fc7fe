"""A device the model's weights do not fit (``--model general`` on a 4 GB card): one line with advice, exit 2, in every command.

No GPU here: the model's move to its device raises torch's own ``torch.OutOfMemoryError``, as CUDA's allocator does.
Before, each command ended in torch's traceback with exit 1 (only an OOM while the model *ran* was one line).
"""

from __future__ import annotations

import pytest
import torch

from birefvid.cli import main
from media import make_images, make_video

MODEL = ["--model", "tiny", "--resolution", "64", "--device", "cpu", "--backend", "torch", "--precision", "fp32"]
TORCH_SAID = ("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 3.81 GiB of which 12.19 MiB is "
              "free. Including non-PyTorch memory, this process has 3.79 GiB memory in use. Of the allocated memory ...")  # fmt: skip


@pytest.fixture()
def weights_do_not_fit(monkeypatch):
    """``Module.to(device, ...)``, the model's move to its device as an engine opens, runs out of device memory."""
    move = torch.nn.Module.to

    def to(self, *args, **kwargs):
        if any(isinstance(a, torch.device) for a in (*args, *kwargs.values())):
            raise torch.OutOfMemoryError(TORCH_SAID)
        return move(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)


def _argv(command: str, tmp_path) -> list[str]:
    """A run of ``command`` on a small input, its outputs under ``tmp_path/out``."""
    video = tmp_path / "in.mp4"
    make_video(video, n_frames=2, with_audio=False)
    out = tmp_path / "out"
    return {
        "process": ["process", str(video), "-o", str(out) + ".mkv"],
        "image": ["image", str(make_images(tmp_path / "pictures", n=1)[0]), "-o", str(out) + ".png"],
        "batch": ["batch", str(video), "--output-dir", str(out), "--output", "mask"],
        "live": ["live", "--source", str(video), "--sink", str(out) + ".mp4"],
        "serve": ["serve", "--host", "127.0.0.1", "--port", "0"],
    }[command]


@pytest.mark.parametrize("command", ["process", "image", "batch", "live", "serve"])
def test_out_of_memory_loading_the_model_is_one_line_with_advice(command, tmp_path, capsys, weights_do_not_fit):
    assert main([*_argv(command, tmp_path), *MODEL, "-q"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "out of memory" in line]
    assert len(lines) == 1, err
    assert "cpu ran out of memory loading the model tiny (CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total " \
           "capacity of 3.81 GiB of which 12.19 MiB is free); try --device cpu or freeing the GPU's memory" in lines[0]
    inputs = {tmp_path / "in.mp4", *(tmp_path / "pictures").glob("*")}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in inputs and ".birefvid-batch" not in p.parts]  # batch's rerun state stays
    assert written == []  # nothing half-written


def test_a_large_model_is_told_of_a_smaller_one_and_an_api_caller_can_still_catch_torchs_error(weights_do_not_fit):
    """A Swin-L model (general, matting, HR, ...) that does not fit is pointed at lite; the error stays torch's
    OutOfMemoryError for a caller that retries elsewhere, and a ConfigError (one line) for the CLI."""
    from birefvid.errors import ConfigError
    from birefvid.runtime import Segmenter

    large = torch.nn.Conv2d(3, 1, 1)
    large.backbone_name = "swin_v1_l"
    with pytest.raises(torch.OutOfMemoryError) as raised:
        Segmenter(module=large, device="cpu", precision="fp32", backend="torch")
    assert isinstance(raised.value, ConfigError)
    assert str(raised.value).endswith("); try a smaller model (model='lite'), device='cpu' or freeing the GPU's memory")

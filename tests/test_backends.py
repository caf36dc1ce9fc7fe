"""The ONNX export and the OpenVINO / ONNX Runtime engines: standard operators only, the official
outputs within 1e-3 in fp32, bf16 close, exports cached, and "auto" resolved sensibly."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import onnx
import pytest
import torch

from birefvid.backends import cached_onnx, choose_backend, choose_precision, export_onnx
from birefvid.backends.export import cached_onnx_path
from birefvid.cli import main
from birefvid.errors import ConfigError, SinkError, cli_naming
from birefvid.models import BiRefNet
from birefvid.models.test_weights import model_with_test_weights
from birefvid.runtime import Segmenter
from system_tools import need_module

CPU = torch.device("cpu")


def test_test_weights_equal_the_parity_fillers(deterministic_state_dict):
    state = BiRefNet("pvt_v2_b0").state_dict()
    ours = model_with_test_weights("pvt_v2_b0").state_dict()
    theirs = deterministic_state_dict(state)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


@pytest.fixture(scope="module")
def b0(pvt_b0_state):
    model = BiRefNet("pvt_v2_b0").eval()
    model.load_state_dict(pvt_b0_state)
    return model


def _onnx_gives(path, x: np.ndarray, want: np.ndarray) -> None:
    """The ONNX file at ``path`` holds standard operators only (the deformable convolution as GridSample), loads in
    ONNX Runtime, takes ``x`` and gives ``logits`` (the names the docs give) equal to ``want`` within 1e-3."""
    import onnxruntime as ort

    graph = onnx.load(str(path)).graph
    assert {node.domain for node in graph.node} <= {"", "ai.onnx"}, "custom operators in the export"
    assert any(node.op_type == "GridSample" for node in graph.node)  # the deformable convolution
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # by the names docs/speed.md gives: the output was the exporter's own name for the last node ("conv2d_118")
    assert [i.name for i in session.get_inputs()] == ["x"] and [o.name for o in session.get_outputs()] == ["logits"]
    got = session.run(["logits"], {"x": x})[0]
    assert got.shape == want.shape == (1, 1, *x.shape[2:])
    assert np.abs(got - want).max() < 1e-3


def test_a_swin_export_runs_in_onnxruntime_and_matches_the_official_model(reference_dir, tmp_path):
    """Swin's window attention (padded windows, shifted ones and their mask) exported and run in ONNX Runtime, against
    the official model's output for the reference's non-square input: each stage's token grid padded to the 7-token
    window across, the decoder's deformable convolution in row bands, the last one short (``deform.BAND_ELEMENTS``).
    At the reference's size: an export costs the same CPU time at 64x96 (~30 s here)."""
    need_module("onnxruntime", "onnxruntime")
    x = np.load(reference_dir / "input_wide224x320.npy").astype(np.float32)
    official = np.load(reference_dir / "output_swin_v1_t_wide224x320.npy").astype(np.float32)
    export_onnx(model_with_test_weights("swin_v1_t"), tmp_path / "m.onnx", tuple(x.shape[2:]))
    _onnx_gives(tmp_path / "m.onnx", x, official)


def test_a_pvt_export_by_the_cli_runs_in_onnxruntime_and_matches_the_official_model(reference_dir, tmp_path, capsys, caplog, monkeypatch):
    """pvt_v2_b0's export (the shipped ``tiny``'s backbone), made as a user makes it (``birefvid export --weights``), on
    the reference's non-square parity input, against the official model's output: issue 14 asks each backbone's export
    to match on the parity inputs. One size: an export costs about the same at any size, and the square one adds no path
    the wide one lacks. The same first export is the command's: its summary, an existing file kept, the cache reused.
    One export for both (~15-35 s each on CI's 2 cores): the command's once checked a seeded model at 96x64 of its own."""
    need_module("onnxruntime", "onnxruntime")
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))  # a first export, also where a developer's cache holds this one
    x = np.load(reference_dir / "input_wide224x320.npy").astype(np.float32)
    official = np.load(reference_dir / "output_pvt_v2_b0_wide224x320.npy").astype(np.float32)
    weights = tmp_path / "pvt_v2_b0_parity.pth"
    torch.save(model_with_test_weights("pvt_v2_b0").state_dict(), weights)
    path = tmp_path / "b0.onnx"
    assert main(["export", str(path), "--weights", str(weights), "--resolution", "320x224"]) == 0
    summary = capsys.readouterr().err
    assert "input 'x' float32 (1, 3, 224, 320)" in summary and "; exported in" in summary
    assert "exported in" not in caplog.text  # said once, in the summary (a logged line said it too)
    _onnx_gives(path, x, official)
    # an existing file is kept unless --overwrite, said in the words of the other commands; -o names it as they do
    assert main(["export", "-o", str(path), "--weights", str(weights), "--resolution", "64"]) == 2
    assert capsys.readouterr().err == f"birefvid: error: output exists: {path} (use --overwrite)\n"
    assert not list(tmp_path.glob("*.partial"))
    # the same model and size again: from the cache in a moment (a generous bound: a copy, not a 15-35 s export), the same bytes
    t0 = time.monotonic()
    assert main(["export", str(tmp_path / "again.onnx"), "--weights", str(weights), "--resolution", "320x224"]) == 0
    assert "from the export cache" in capsys.readouterr().err and time.monotonic() - t0 < 10
    assert (tmp_path / "again.onnx").read_bytes() == path.read_bytes()


def _frames(n=2, h=72, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_exported_engines_match_torch_fp32(b0, backend):
    need_module(backend, backend)
    frames = _frames()
    want = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="torch").predict(frames)
    seg = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend=backend)
    got = seg.predict(frames)
    assert (seg.backend, seg.precision) == (backend, "fp32")
    assert got.shape == want.shape == (2, 1, 72, 96)
    assert float((got - want).abs().max()) < 1e-3


def test_openvino_bf16_stays_close_to_fp32(b0):
    need_module("openvino", "openvino")
    frames = _frames()
    want = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="torch").predict(frames)
    got = Segmenter(module=b0, resolution=64, device="cpu", precision="bf16", backend="openvino").predict(frames)
    assert float((got - want).abs().mean()) < 0.01


def test_exports_are_cached_per_weights_and_size(b0):
    path, seconds = cached_onnx(b0, (64, 64))  # an earlier test may have exported it already
    again, seconds_again = cached_onnx(b0, (64, 64))
    assert again == path and seconds_again is None
    assert cached_onnx_path(b0, (64, 64)) == path
    other = BiRefNet("pvt_v2_b0").eval()
    other.load_state_dict({k: v + 1e-3 if v.is_floating_point() else v for k, v in b0.state_dict().items()})
    # other weights, size or batch: another file (the path alone; each export costs ~15 s here)
    assert len({path, cached_onnx_path(other, (64, 64)), cached_onnx_path(b0, (96, 64)), cached_onnx_path(b0, (64, 64), batch=2)}) == 4


def test_a_segmenter_says_whether_a_size_needs_a_first_export(b0, tmp_path, monkeypatch):
    """What live mode asks to prefer a size exported already: an exported engine needs one until the file is in
    the cache (under the same key as cached_onnx's), or in the fallback cache; PyTorch never does."""
    need_module("onnxruntime", "onnxruntime")
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))
    seg = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="onnxruntime")
    assert seg.needs_export(72, 96) and seg.inference_size(72, 96) == (64, 64)
    cached = cached_onnx_path(b0, (64, 64))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"an export of an earlier run")
    assert not seg.needs_export(72, 96) and seg.with_backend("onnxruntime").needs_export(72, 96) is False
    seg.resolution = (96, 96)
    assert seg.needs_export(72, 96)
    assert not Segmenter(module=b0, resolution=96, device="cpu", precision="fp32", backend="torch").needs_export(72, 96)


def test_the_export_key_hashes_the_weights_once_an_engine_and_sees_every_change(tmp_path, monkeypatch):
    """Live start-up asks several sizes whether they need a first export, and each asked for the export key, a
    hash of the weights (0.16 s for a 44M-parameter model, ~0.8 s for ``general``): now one hash an engine. A digest
    kept per model across engines missed weights changed through ``p.data`` (no version counter bumped), and the
    changed model then loaded the old weights' cached export."""
    import hashlib

    from birefvid.backends import export

    need_module("onnxruntime", "onnxruntime")
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path))
    hashes = []
    blake2b = hashlib.blake2b
    monkeypatch.setattr(export.hashlib, "blake2b", lambda *a, **k: hashes.append(1) or blake2b(*a, **k))
    model = BiRefNet("pvt_v2_b0").eval()
    seg = Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="onnxruntime")
    for side in (64, 96, 128):
        seg.resolution = (side, side)
        assert seg.needs_export(72, 96)
    assert len(hashes) == 1
    first = cached_onnx_path(model, (64, 64))
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # weights changed in place (a training step): a new key
    second = cached_onnx_path(model, (64, 64))
    next(model.parameters()).data.mul_(0.5)  # through .data (EMA updates, old training code): a new key too
    assert len({first, second, cached_onnx_path(model, (64, 64))}) == 3


def test_a_run_waits_for_another_processs_export_of_the_same_model(b0, tmp_path, monkeypatch, caplog):
    """Runs started together on an empty cache (two terminals, a batch's Ray workers) each exported the
    same model, 20-90 s apiece on the same cores. Now one exports while the others wait for its file."""
    import threading

    from birefvid.backends.export import export_lock

    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path))
    path = cached_onnx_path(b0, (64, 64))
    path.parent.mkdir(parents=True)
    got: list = []
    # at WARNING whatever an earlier test in this worker left the birefvid logger at (a -q run)
    with caplog.at_level("WARNING", logger="birefvid"), export_lock(path):  # "another process" exporting (flock locks separate opens, threads too)
        waiter = threading.Thread(target=lambda: got.append(cached_onnx(b0, (64, 64))), daemon=True)
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and not got, "it did not wait for the export under way"
        path.write_bytes(b"the other process's export")  # written and renamed into place by the holder
    waiter.join(30)
    assert got == [(path, None)], "it exported again instead of taking the finished file"
    assert "waiting for another birefvid process exporting the same model" in caplog.text


def test_an_export_removes_what_exports_killed_outright_left_but_not_a_live_runs(tmp_path):
    """A first run SIGKILLed while exporting (the OOM killer, a container stopped) left NAME.XXXXXXXX.onnx.partial in
    the cache, as large as the export (73 MB for tiny, ~900 MB for general), and its model hand-over
    .model.XXXXXXXX.pt.partial: never removed, one more at each killed first run. The next export of that model removes
    them under its export lock; what a live run holds (its writer lock) is left, as is another model's partial."""
    from birefvid.backends.export import remove_dead_partials
    from birefvid.io.atomic import writer_lock

    path = tmp_path / "birefnet-pvt_v2_b0-0123456789abcdef-64x64-b1-v0.1.0-g5-op18.onnx"
    dead = [tmp_path / f"{path.stem}.k1ll3d01.onnx.partial", tmp_path / ".model.k1ll3d02.pt.partial"]
    live = [tmp_path / f"{path.stem}.l1ve0001.onnx.partial", tmp_path / ".model.l1ve0002.pt.partial"]
    other = tmp_path / "birefnet-pvt_v2_b0-0123456789abcdef-128x128-b1-v0.1.0-g5-op18.k1ll3d03.onnx.partial"
    for each in (*dead, *live, other):
        each.write_bytes(b"half an export")
    held = [writer_lock(each) for each in live]  # as export_onnx and the model hand-over hold theirs
    try:
        assert sorted(remove_dead_partials(path)) == sorted(dead)
        assert not any(each.exists() for each in dead) and all(each.exists() for each in (*live, other))
    finally:
        for fd in held:
            os.close(fd)
    assert sorted(remove_dead_partials(path)) == sorted(live)  # their runs gone


def test_an_export_that_cannot_replace_another_runs_open_one_uses_it(tmp_path, monkeypatch):
    """Windows has no export lock, so two runs on an empty cache both export; the second's rename onto
    the file the first has open is refused there (PermissionError), which failed that run."""
    from birefvid.backends import export

    class Program:  # what torch.onnx.export returns: only save() is used here
        def save(self, where):
            with open(where, "wb") as f:
                f.write(b"this run's export")

    def refused(src, dst):
        raise PermissionError(13, "Access is denied")

    path = tmp_path / "model.onnx"
    path.write_bytes(b"the other run's export")  # in place, and open in that run
    monkeypatch.setattr(os, "replace", refused)
    tmp = tmp_path / "model.onnx.partial"
    with pytest.raises(Exception, match="cannot write .*Access is denied"):  # elsewhere the lock rules that out: someone else's file
        export._save(Program(), str(tmp), path)
    monkeypatch.setattr(sys, "platform", "win32")
    export._save(Program(), str(tmp), path)
    assert path.read_bytes() == b"the other run's export"
    path.unlink()
    with pytest.raises(Exception, match="cannot write .*Access is denied"):  # not there: a real failure
        export._save(Program(), str(tmp), path)


def test_an_export_says_each_step_as_it_begins(tmp_path, caplog):
    """A first live run's 20-60 s export showed its start and its end and nothing between: each step the exporter
    begins is now a line with the seconds so far, in order, from the exporter's own progress (no made-up percentage)."""
    import re

    with caplog.at_level("WARNING", logger="birefvid.backends.export"):
        export_onnx(torch.nn.Conv2d(3, 1, 1), tmp_path / "m.onnx", (8, 8))
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("export step")]
    assert [re.sub(r" \(\d+ s in\)$", "", line) for line in steps] == [
        "export step 1 of 4: capturing the model's graph (torch.export)",
        "export step 2 of 4: decomposing it into basic operations",
        "export step 3 of 4: translating it to ONNX",
        "export step 4 of 4: writing the file",
    ], steps
    seconds = [int(re.search(r"\((\d+) s in\)$", line).group(1)) for line in steps]
    assert seconds == sorted(seconds)
    assert all(getattr(r, "notice", False) for r in caplog.records if r.getMessage().startswith("export step"))  # "birefvid: ...", no warning
    assert onnx.load(str(tmp_path / "m.onnx")).graph.node


def test_an_export_named_as_long_as_the_disk_allows_is_placed(tmp_path):
    """``export -o`` 78 Japanese characters + ``.onnx`` (239 bytes, a valid name) exported, then failed with
    'File name too long': its temporary name beside it (``NAME.XXXXXXXX.onnx.partial``) was not."""
    from birefvid.backends import export

    cached = tmp_path / "cached.onnx"
    cached.write_bytes(b"the export")
    path = tmp_path / ("日" * 78 + ".onnx")
    export._place(cached, path)
    assert path.read_bytes() == b"the export" and sorted(p.name for p in tmp_path.iterdir()) == sorted(["cached.onnx", path.name])


def test_a_read_only_cache_is_read_and_new_files_go_to_a_fallback(b0, tmp_path, monkeypatch, caplog):
    """A CI container's cache is often read-only (baked into the image, or a read-only home). A cache
    holding the export failed in OpenVINO ("Couldn't create directory .../openvino"), and one without
    it failed the run with exit 2 before exporting; now the export is read from it, and what must be
    written (OpenVINO's blobs, a new export) goes to /tmp/birefvid-cache-UID, with one warning."""
    import tempfile

    from fs_fixtures import read_only_copy, read_only_dir

    need_module("openvino", "openvino")
    exported, _ = cached_onnx(b0, (64, 64))  # in the session's cache; an earlier test may have made it
    frames = _frames()
    want = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="torch").predict(frames)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    fallback = tmp_path / "tmp" / f"birefvid-cache-{os.getuid()}"
    with read_only_copy(tmp_path / "baked", {f"onnx/{exported.name}": exported}) as baked:
        monkeypatch.setenv("BIREFVID_CACHE_DIR", str(baked))
        seg = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="openvino")
        got = seg.predict(frames)
        assert seg.engine.export_seconds == 0  # read from the read-only cache, not exported again
        assert float((got - want).abs().max()) < 1e-3
        assert any((fallback / "openvino").iterdir())  # OpenVINO's compiled blobs
        assert (fallback.stat().st_mode & 0o777) == 0o700
        said = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
        assert said == [f"the cache {baked} cannot be written (Read-only file system): using {fallback} instead "
                        f"(BIREFVID_CACHE_DIR is {baked}: point it at a writable folder to keep it elsewhere)"]  # fmt: skip
    with read_only_dir(tmp_path / "empty") as empty:
        from birefvid.backends.export import writable_cache_dir

        monkeypatch.setenv("BIREFVID_CACHE_DIR", str(empty))
        assert writable_cache_dir("onnx") == fallback / "onnx" and writable_cache_dir("openvino") == fallback / "openvino"
        said = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
        assert len(said) == 2 and said[1].startswith(f"the cache {empty} cannot be written")  # one for this cache
        (fallback / "onnx" / exported.name).write_bytes(exported.read_bytes())  # an earlier run that fell back exported it
        assert cached_onnx(b0, (64, 64)) == (fallback / "onnx" / exported.name, None)


def _constant_model(path, like):
    """An ONNX model with the inputs and outputs of the export ``like`` whose matte is all foreground (logit 20)."""
    from onnx import TensorProto, helper

    graph = onnx.load(str(like), load_external_data=False).graph
    x, y = graph.input[0], graph.output[0]
    consts = [helper.make_tensor("axes", TensorProto.INT64, [1], [1]), helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
              helper.make_tensor("big", TensorProto.FLOAT, [], [20.0])]  # fmt: skip
    nodes = [helper.make_node("ReduceSum", [x.name, "axes"], ["s"], keepdims=1), helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["z", "big"], [y.name])]  # fmt: skip
    model = helper.make_model(helper.make_graph(nodes, "planted", [x], [y], initializer=consts), opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))


@pytest.mark.skipif(os.name != "posix", reason="modes and owners are POSIX's")
def test_a_model_planted_in_a_cache_other_users_can_write_is_not_run(b0, tmp_path, monkeypatch, caplog):
    """BIREFVID_CACHE_DIR at a shared folder (chmod 1777 or 0777): another user put a model under the name a run
    looks for (the weights' digest, the same everywhere), and every run used it: an all-foreground matte turned a
    call's blur off. Now such a file is passed by, and the export comes from this user's own cache."""
    import tempfile

    from birefvid.backends.export import onnx_cached, writable_cache_dir

    need_module("openvino", "openvino")
    honest, _ = cached_onnx(b0, (64, 64))  # in the session's cache; an earlier test may have made it
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    private = tmp_path / "tmp" / f"birefvid-cache-{os.getuid()}"
    (private / "onnx").mkdir(parents=True)
    private.chmod(0o700)
    (private / "onnx" / honest.name).write_bytes(honest.read_bytes())  # so nothing is exported again here
    shared = tmp_path / "shared"
    (shared / "onnx").mkdir(parents=True)
    shared.chmod(0o1777)
    (shared / "onnx").chmod(0o777)  # anyone may add a file
    _constant_model(shared / "onnx" / honest.name, honest)
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(shared))
    frames = _frames()
    want = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="torch").predict(frames)
    got = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="openvino").predict(frames)
    assert float((got - want).abs().max()) < 1e-3, float(got.min())  # the planted model's matte is all 1
    said = [r.getMessage() for r in caplog.records if "would run as yours" in r.getMessage()]
    assert said and "can be written by other users (mode 777)" in said[0], said
    assert writable_cache_dir("openvino") == shared / "openvino"  # this user's own folder under a sticky one is fine
    (shared / "onnx").chmod(0o755)
    (shared / "onnx" / honest.name).chmod(0o666)  # the folder is safe, the file is not
    assert not onnx_cached(b0, (64, 64)) or (private / "onnx" / honest.name).is_file()
    from birefvid.backends.cache_trust import file_distrust

    assert "mode 666" in (file_distrust(shared / "onnx" / honest.name) or "")
    (shared / "onnx" / honest.name).chmod(0o644)
    assert file_distrust(shared / "onnx" / honest.name) is None
    if os.getuid() == 0:  # another user's file, read-only to all: they can still change it
        os.chown(shared / "onnx" / honest.name, 54321, 54321)
        assert "another user's (uid 54321)" in (file_distrust(shared / "onnx" / honest.name) or "")
        os.chown(shared / "onnx" / honest.name, os.getuid(), os.getgid())
    shared.chmod(0o777)  # not sticky: another user could rename this user's folders away and put their own
    assert f"{shared} can be written by other users (mode 777)" in (file_distrust(shared / "onnx" / honest.name) or "")


@pytest.mark.skipif(os.name != "posix", reason="modes and owners are POSIX's")
@pytest.mark.parametrize("theirs", ["openvino", "openvino/0123.blob"])
def test_another_user_s_read_only_cache_is_not_linked_into_the_fallback(tmp_path, monkeypatch, caplog, theirs):
    """A cache this user cannot write was never checked for its owner: another user's folder (BIREFVID_CACHE_DIR at a
    colleague's cache, mode 755), or their file in a root folder, had its OpenVINO blobs linked into this user's
    /tmp fallback, where OpenVINO loads them as compiled models: whatever they put there ran as this user's. A link
    made so by an earlier version is removed."""
    import tempfile

    from fs_fixtures import read_only_copy

    from birefvid.backends.export import writable_cache_dir

    blob = tmp_path / "blob"
    blob.write_bytes(b"a compiled model")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    fallback = tmp_path / "tmp" / f"birefvid-cache-{os.getuid()}" / "openvino"
    files = {"openvino/0123.blob": blob, "openvino/4567.blob": blob}
    with read_only_copy(tmp_path / "cache", files, owners={theirs: 54321}) as cache:
        monkeypatch.setenv("BIREFVID_CACHE_DIR", str(cache))
        fallback.mkdir(parents=True)
        fallback.parent.chmod(0o700)
        (fallback / "0123.blob").symlink_to(cache / "openvino" / "0123.blob")  # linked by a version before the check
        assert writable_cache_dir("openvino") == fallback
        linked = sorted(p.name for p in fallback.iterdir())
    if theirs == "openvino":  # the whole folder is theirs: nothing of it is used, and the run says why
        assert linked == []
        said = [r.getMessage() for r in caplog.records if "would run as yours" in r.getMessage()]
        assert said and f"{cache / 'openvino'} is another user's (uid 54321)" in said[0], said
    else:  # root's folder, one file theirs: the rest is still used
        assert linked == ["4567.blob"]


# cache_trust.py imports the standard library only: loaded by its path, a child runs it without importing torch
# (the birefvid.backends package's imports: ~3 s a child on CI's 2 cores, for a check that takes milliseconds)
_DISTRUST = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("cache_trust", sys.argv[2])
cache_trust = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache_trust)
print(cache_trust.folder_distrust(Path(sys.argv[1])))
"""


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="running under another group needs root")
def test_a_cache_writable_by_a_group_other_users_share_is_not_trusted(tmp_path):
    """A group-writable folder of the user's primary group counted as the user's own: where every user's primary
    group is ``users`` (gid 100), a team cache at 2775 let any of them plant a model. A private group (named as the
    user, no one else in it) still counts as the user's own: a home under umask 002 is no shared one."""
    import grp
    import subprocess

    try:
        shared = grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no group 'users' here")
    team, own = tmp_path / "team", tmp_path / "own"
    for folder, gid in ((team, shared), (own, 0)):
        (folder / "onnx").mkdir(parents=True)
        for made in (folder, folder / "onnx"):
            os.chown(made, 0, gid)
            made.chmod(0o2775)

    def distrust(folder, gid):
        from birefvid.backends import cache_trust

        run = subprocess.run([sys.executable, "-c", _DISTRUST, str(folder / "onnx"), cache_trust.__file__], group=gid,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert distrust(team, shared) == f"{team / 'onnx'} can be written by other users (mode 2775)"
    assert distrust(own, 0) == "None"  # root's group, named as root, with no one else in it


@pytest.mark.skipif(os.name != "posix", reason="modes and owners are POSIX's")
def test_a_cache_reached_through_a_link_is_checked_where_the_link_leads(tmp_path):
    """BIREFVID_CACHE_DIR at a link to a folder inside a 0777 one: the folders above the link were checked, not those
    above its target, where anyone could rename the cache away and put their own in its place."""
    from birefvid.backends.cache_trust import folder_distrust

    (tmp_path / "open" / "cache").mkdir(parents=True)
    (tmp_path / "open").chmod(0o777)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "cache").symlink_to(tmp_path / "open" / "cache")
    said = f"{tmp_path / 'open'} can be written by other users (mode 777)"
    assert folder_distrust(tmp_path / "mine" / "cache") == said == folder_distrust(tmp_path / "open" / "cache")
    (tmp_path / "open").chmod(0o1777)  # sticky, as /tmp: no one renames another's folder there
    assert folder_distrust(tmp_path / "mine" / "cache") is None


def test_a_cache_on_a_full_disk_says_so_and_where_to_put_it(tmp_path, monkeypatch):
    """An export into a cache whose disk is full ended "cannot write .../onnx/birefnet-....onnx: No space left on
    device": neither the cache nor the way out (BIREFVID_CACHE_DIR) was named. Nothing is left behind."""
    from fs_fixtures import full_dir

    model = torch.nn.Conv2d(3, 1, 1).eval()  # a small export: the disk is full, not too small
    with full_dir(tmp_path / "cache", "64k") as cache:
        monkeypatch.setenv("BIREFVID_CACHE_DIR", str(cache))
        (cache / "onnx").mkdir()
        fd = os.open(cache / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # full
            pass
        finally:
            os.close(fd)
        with pytest.raises(SinkError) as raised:
            cached_onnx(model, (32, 32))
        assert [p.name for p in (cache / "onnx").iterdir() if not p.name.endswith(".lock")] == []
    assert str(raised.value) == (f"the model cache {cache / 'onnx'} has no room for the export of model (No space left on device); free some "
                                 f"space there, or BIREFVID_CACHE_DIR is {cache}: point it at a folder on a disk with room")  # fmt: skip


@pytest.mark.parametrize("variable, under", [("BIREFVID_CACHE_DIR", "~/bv"), ("XDG_CACHE_HOME", "~/xdg")])
def test_a_cache_variable_starting_with_a_tilde_is_under_the_home_folder(tmp_path, monkeypatch, variable, under):
    """Set where no shell expands it (a Dockerfile's ENV, a systemd unit), ``~/bv`` made a folder named ``~`` in the
    working folder: a cache in each folder a run started from, each exporting the model again."""
    from birefvid.backends.export import cache_dir, writable_cache_dir

    monkeypatch.delenv("BIREFVID_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(variable, under)
    monkeypatch.chdir(tmp_path)
    want = tmp_path / "home" / under[2:] / ("" if variable == "BIREFVID_CACHE_DIR" else "birefvid")
    assert cache_dir() == want
    assert writable_cache_dir("onnx") == want / "onnx" and (want / "onnx").is_dir() and not (tmp_path / "~").exists()


def test_a_cache_variable_naming_a_file_says_so_and_not_to_set_it(tmp_path, monkeypatch, caplog):
    """BIREFVID_CACHE_DIR at a file fell back with "(Not a directory) ... (set BIREFVID_CACHE_DIR to keep it elsewhere)":
    it named no file, and told the user to set what they had set."""
    import tempfile

    from birefvid.backends.export import writable_cache_dir

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))
    assert writable_cache_dir("onnx") == tmp_path / "tmp" / f"birefvid-cache-{os.getuid()}" / "onnx"
    said = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(said) == 1 and f"({tmp_path / 'cache'} is a file, not a folder)" in said[0], said
    assert said[0].endswith(f"(BIREFVID_CACHE_DIR is {tmp_path / 'cache'}: point it at a writable folder to keep it elsewhere)"), said


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="owners are POSIX's")
def test_a_link_planted_at_the_tmp_fallback_cache_is_refused(tmp_path, monkeypatch):
    """/tmp/birefvid-cache-UID is made by whoever comes first: a link another user left there was followed,
    and checked where it pointed at that moment, so they could point it at their own folder after the check
    and have this user's runs load models they wrote."""
    import tempfile

    from birefvid.backends.export import writable_cache_dir

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "tmp" / f"birefvid-cache-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SinkError, match="is not this user's own"):
        writable_cache_dir("onnx")
    assert not (tmp_path / "elsewhere" / "onnx").exists()


def test_openvino_blobs_baked_into_a_read_only_cache_are_used_by_any_uid(b0, tmp_path, monkeypatch):
    """A container image baked with a run's whole cache (the export and OpenVINO's compiled blob) still
    compiled the model again at every start, into the /tmp fallback: OpenVINO reads blobs only from the
    folder it writes. Now the baked blobs are linked there, so nothing is compiled or written.

    And OpenVINO writes its compiled blobs 0440: a cache baked by the build's user could not be read by the uid the
    container runs as (Kubernetes' runAsUser), so every start compiled the model again into /tmp (65 MB for tiny,
    4.4 s more at start here). Blobs are now readable by all, as exports are, and writable by no one else. One test:
    the image's build step is the compile whose blobs' modes matter (a compile costs ~3 s on CI's 2 cores)."""
    import tempfile

    from fs_fixtures import read_only_copy

    need_module("openvino", "openvino")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    exported, _ = cached_onnx(b0, (64, 64))  # in the session's cache; an earlier test may have made it
    build = tmp_path / "baked"  # the image's build step fills the folder the containers then mount read-only
    (build / "onnx").mkdir(parents=True)
    os.link(exported, build / "onnx" / exported.name)  # so only OpenVINO's compile writes here
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(build))
    mask = os.umask(0o022)
    try:
        Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="openvino").predict(_frames(n=1))
    finally:
        os.umask(mask)
    blobs = [f for f in (build / "openvino").iterdir() if f.is_file()]
    modes = {f.name: oct(f.stat().st_mode & 0o777) for f in blobs}
    assert blobs and all(f.stat().st_mode & 0o044 == 0o044 and not f.stat().st_mode & 0o022 for f in blobs), modes
    (tmp_path / "image").mkdir()
    built = {}
    for sub in ("onnx", "openvino"):
        for f in (build / sub).iterdir():
            if not f.name.startswith("."):
                built[f"{sub}/{f.name}"] = tmp_path / "image" / f.name
                os.link(f, built[f"{sub}/{f.name}"])
    assert any(name.startswith("openvino/") for name in built)
    with read_only_copy(tmp_path / "baked", built) as baked:
        monkeypatch.setenv("BIREFVID_CACHE_DIR", str(baked))
        Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="openvino").predict(_frames(n=1))
        blobs = list((tmp_path / "tmp" / f"birefvid-cache-{os.getuid()}" / "openvino").iterdir())
        assert blobs and all(b.is_symlink() and b.resolve().parent == baked / "openvino" for b in blobs), blobs  # none compiled anew


def test_a_missing_onnxruntime_names_the_extra_to_install(monkeypatch):
    """The [onnxruntime] extra pins what birefvid was checked with; the message said a bare `pip install onnxruntime`."""
    from birefvid.backends import choice

    monkeypatch.setattr(choice, "_installed", lambda module: module != "onnxruntime")
    with pytest.raises(ConfigError, match=r'^this backend needs the onnxruntime package: pip install "birefvid\[onnxruntime\]"$'):
        choose_backend("onnxruntime", CPU)


def test_auto_backend_and_precision(monkeypatch):
    monkeypatch.setenv("BIREFVID_BACKEND", "torch")
    assert choose_backend("auto", CPU) == "torch"
    monkeypatch.setenv("BIREFVID_BACKEND", "auto")  # the same as unset
    auto_env = choose_backend("auto", CPU)
    monkeypatch.delenv("BIREFVID_BACKEND")
    assert choose_backend("auto", CPU) == auto_env
    monkeypatch.setenv("BIREFVID_BACKEND", "onnx")  # named --backend, which the user had not given
    with cli_naming(), pytest.raises(ConfigError, match=r"BIREFVID_BACKEND='onnx' is not a backend; set it to one of auto, torch, .*or unset it"):
        choose_backend("auto", CPU)
    monkeypatch.delenv("BIREFVID_BACKEND")
    import platform

    expected = "openvino" if platform.machine().lower() in ("x86_64", "amd64") else "torch"
    assert choose_backend("auto", CPU) == expected
    assert choose_backend("auto", torch.device("cuda")) == "torch"
    assert choose_precision("fp32", "openvino", CPU) == "fp32"
    assert choose_precision("auto", "onnxruntime", CPU) == "fp32"
    with pytest.raises(ConfigError, match="onnxruntime.*fp32 only"):
        choose_precision("bf16", "onnxruntime", CPU)
    with pytest.raises(ConfigError, match="openvino.*runs on the CPU"):
        choose_backend("openvino", torch.device("cuda"))


def test_cli_names_a_backend_that_cannot_run_here(pvt_b0_weights, tmp_path, capsys):
    from media import make_video

    clip = make_video(tmp_path / "in.mp4", n_frames=2, size=(96, 72))
    code = main(["process", str(clip.path), "-o", str(tmp_path / "o.mkv"), "--output", "mask", "--weights", str(pvt_b0_weights),
                 "--device", "cpu", "--backend", "onnxruntime", "--precision", "bf16"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "--backend onnxruntime runs fp32 only" in err, err
    assert not (tmp_path / "o.mkv").exists()


def test_openvino_runs_a_batch_on_parallel_streams_in_order(b0):
    """A batch runs on OpenVINO's throughput streams: same alphas as frame by frame, in the batch's order."""
    need_module("openvino", "openvino")
    frames = _frames(n=5, seed=3)
    seg = Segmenter(module=b0, resolution=64, device="cpu", precision="fp32", backend="openvino")
    one_by_one = torch.cat([seg.predict(frames[i : i + 1]) for i in range(5)])
    assert seg.file_batch_size(72, 96) == (2 if (os.cpu_count() or 1) >= 2 else 1)  # files run two frames on two streams
    batched = seg.predict(frames)
    assert float((batched - one_by_one).abs().max()) < 1e-4
    assert float((batched[1:] - one_by_one[:-1]).abs().max()) > 0.01  # the frames differ, so order is checked
    last = seg.predict(frames[:1])  # a lone frame once batches run: the same streams
    assert float((last - one_by_one[:1]).abs().max()) < 1e-4


def test_process_runs_files_on_openvino_streams(pvt_b0_weights, tmp_path):
    """`process --backend openvino` writes every frame with its own timestamp and reports the backend and precision
    it ran; files process in batches on the throughput streams, with the masks of one frame at a time."""
    need_module("openvino", "openvino")
    from media import make_video, read_video

    clip = make_video(tmp_path / "in.mp4", n_frames=5, size=(96, 72))  # batches of 2, 2 and a lone last frame
    out, report = tmp_path / "out.mkv", tmp_path / "report.json"
    code = main(["process", str(clip.path), "-o", str(out), "--output", "mask", "--weights", str(pvt_b0_weights),
                 "--resolution", "64", "--device", "cpu", "--backend", "openvino", "--precision", "fp32", "--report", str(report)])  # fmt: skip
    assert code == 0
    decoded = read_video(out, "gray")
    assert len(decoded.images) == 5 and decoded.times == clip.times
    expected = 2 if (os.cpu_count() or 1) >= 2 else 1
    resolved = json.loads(report.read_text())["resolved"]
    assert (resolved["backend"], resolved["precision"], resolved["batch_size"]) == ("openvino", "fp32", expected)
    # the same masks as one frame at a time (the streams run the same graph)
    single = tmp_path / "single.mkv"
    assert main(["process", str(clip.path), "-o", str(single), "--output", "mask", "--weights", str(pvt_b0_weights),
                 "--resolution", "64", "--device", "cpu", "--backend", "openvino", "--precision", "fp32", "--batch-size", "1"]) == 0  # fmt: skip
    one = read_video(single, "gray")
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(decoded.images, one.images)) <= 1


def test_onnxruntime_on_cuda_needs_a_package_with_the_cuda_provider():
    """The CPU-only onnxruntime package would run a --device cuda job on the CPU without a word."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ConfigError, match="runs on the CPU only.*install onnxruntime-gpu"):
        choose_backend("onnxruntime", torch.device("cuda"))
    assert choose_backend("onnxruntime", CPU) == "onnxruntime"


def test_onnxruntime_gpu_providers_run_on_the_chosen_gpu():
    """TensorRT's device_id defaults to 0 like CUDA's: both must name cuda:N's GPU. No session is made:
    only the provider list is built, for an onnxruntime build that lists TensorRT and CUDA."""
    from types import SimpleNamespace

    from birefvid.backends.engines import OnnxRuntimeEngine

    gpu_build = SimpleNamespace(get_available_providers=lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    providers = OnnxRuntimeEngine(torch.nn.Identity(), torch.device("cuda:1"), "fp32")._providers(gpu_build)
    assert [p if isinstance(p, str) else p[0] for p in providers] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers[0][1]["device_id"] == 1 and providers[1][1]["device_id"] == 1
    assert providers[0][1]["trt_engine_cache_enable"] is True
    assert OnnxRuntimeEngine(torch.nn.Identity(), CPU, "fp32")._providers(gpu_build) == ["CPUExecutionProvider"]


def test_onnxruntime_on_cuda_that_cannot_start_its_gpu_provider_is_an_error_not_a_cpu_run(monkeypatch):
    """onnxruntime-gpu without the CUDA/cuDNN libraries it needs drops the CUDA provider with a log line
    and runs on the CPU (get_providers() -> CPU only): a --device cuda run went on at CPU speed. A
    TensorRT provider that fails is retried without it, by birefvid, with a warning (ORT's own
    fallback printed to stdout and went to the CPU). Fake sessions: no GPU or model is needed."""
    from types import SimpleNamespace

    from birefvid.backends.engines import OnnxRuntimeEngine

    made: list[tuple[list[str], dict]] = []

    def build(active_without_trt: list[str], trt_fails: bool) -> SimpleNamespace:
        def session(path, options, providers, **kwargs):
            names = [p if isinstance(p, str) else p[0] for p in providers]
            made.append((names, kwargs))
            if trt_fails and "TensorrtExecutionProvider" in names:
                raise RuntimeError("TensorRT EP could not be created: libnvinfer.so.10: cannot open shared object file\nmore")
            return SimpleNamespace(get_providers=lambda: active_without_trt, get_inputs=lambda: [SimpleNamespace(name="x")])

        available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        ort = SimpleNamespace(get_available_providers=lambda: available, InferenceSession=session,
                              SessionOptions=SimpleNamespace, RunOptions=SimpleNamespace, GraphOptimizationLevel=SimpleNamespace(ORT_ENABLE_ALL=99))  # fmt: skip
        monkeypatch.setitem(sys.modules, "onnxruntime", ort)
        return ort

    engine = OnnxRuntimeEngine(torch.nn.Identity(), torch.device("cuda"), "fp32")
    with cli_naming(), pytest.raises(ConfigError, match="could not start its CUDA provider on cuda and would run on the CPU.*--backend torch"):
        build(["CPUExecutionProvider"], trt_fails=False)
        engine._compile("m.onnx")
    assert made[-1][1] == {"enable_fallback": 0}  # ORT's own retry would print to stdout and land on the CPU
    made.clear()
    with pytest.warns(RuntimeWarning, match="TensorRT provider failed .*libnvinfer.*; using its CUDA provider"):
        build(["CUDAExecutionProvider", "CPUExecutionProvider"], trt_fails=True)
        engine._compile("m.onnx")
    assert [names for names, _ in made] == [["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                                            ["CUDAExecutionProvider", "CPUExecutionProvider"]]  # fmt: skip


def test_fp16_on_the_cpu_warns_that_it_crawls(caplog):
    """PyTorch's CPU fp16 convolutions ran tiny 230x slower than fp32 (56 s a frame) without a word."""
    with cli_naming():
        assert choose_precision("fp16", "torch", CPU) == "fp16"
    assert "--precision fp16 on the CPU runs PyTorch's slow fp16 kernels" in caplog.text and "--precision bf16" in caplog.text


def test_bf16_on_a_gpu_without_bf16_units_warns(monkeypatch, caplog):
    """A T4 (sm_75) runs bf16 by emulation: --precision bf16 there was slower than fp16 without a word."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with cli_naming():
        assert choose_precision("bf16", "torch", torch.device("cuda")) == "bf16"
    assert "--precision bf16: this GPU (compute capability 7.5) has no bf16 units" in caplog.text and "--precision fp16" in caplog.text


_EXPORTS_IN_A_FRESH_PROCESS = """
import json, logging, os, sys, threading
from pathlib import Path
import torch
from birefvid.backends import export

class Interrupt:  # Ctrl-C (a notebook's stop button) while the exporter's first imports run
    fired = False
    def find_spec(self, name, path=None, target=None):
        if name == "onnx.reference.op_run" and not Interrupt.fired:
            Interrupt.fired = True
            raise KeyboardInterrupt
        return None

def export_interrupted_then_again(out):
    interrupt = Interrupt()
    sys.meta_path.insert(0, interrupt)
    model = torch.nn.Conv2d(3, 1, 1)
    try:
        export.export_onnx(model, out, (8, 8))
    except KeyboardInterrupt:
        pass
    sys.meta_path.remove(interrupt)
    try:
        export.export_onnx(model, out, (8, 8))  # the same process (the kernel) exports once asked again
    except BaseException as exc:
        return [repr(exc)]
    return []

class Said(logging.Handler):  # what each export logged, the reason it exported here among it
    lines = []
    def emit(self, record):
        Said.lines.append(record.getMessage())

logging.getLogger().addHandler(Said())
logging.getLogger().setLevel(logging.DEBUG)

class Net(torch.nn.Module):  # defined in __main__: the export process cannot import it
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
    def forward(self, x):
        return self.conv(x)

def export_off_the_main_thread(model, out, ahead):
    errors = []
    def work():
        try:
            export.export_onnx(model, out, (8, 8))
        except BaseException as exc:
            errors.append(repr(exc))
    def run():
        thread = threading.Thread(target=work)  # off the main thread, as live mode's warm-up exports
        thread.start()
        thread.join()
    if ahead == "ahead":
        with export.saved_for_export(model):
            run()
    else:
        run()
    return errors

results = {}
for case in sys.argv[2:]:  # each in a folder and cache of its own; "interrupted" first: it needs the first imports
    folder = Path(sys.argv[1]) / case
    folder.mkdir()
    os.environ["BIREFVID_CACHE_DIR"] = str(folder / "cache")
    if case == "interrupted":
        errors = export_interrupted_then_again(folder / "m.onnx")
        results[case] = {"errors": errors, "fired": Interrupt.fired}
        continue
    kind, ahead = case.split("-")
    model = Net()
    if kind == "lambda":  # a module holding a lambda does not pickle at all
        model.scale = lambda x: x
        model.forward = lambda x, m=model: m.conv(x)
    Said.lines = []
    errors = export_off_the_main_thread(model, folder / "m.onnx", ahead)
    results[case] = {"errors": errors, "said": Said.lines}
print(json.dumps(results))
"""

_THREAD_CASES = ("main-ahead", "lambda-ahead", "main-not")


@pytest.fixture(scope="module")
def exports_in_a_fresh_process(tmp_path_factory):
    """The exports of the tests below, run one after another in one fresh Python process (each test needs one: the
    exporter's first imports, or a model class of ``__main__``'s), each in a folder of its own: what it logged and
    raised, and its folder. One process rather than one a case: its start and the exporter's first import cost
    10-30 s on CI's 2 cores, and a case runs in 2-5 s. The interrupted export runs first, while the exporter's
    modules are still to be imported; the others need only that the process is not pytest's."""
    import subprocess

    root = tmp_path_factory.mktemp("fresh-exports")
    done = subprocess.run([sys.executable, "-c", _EXPORTS_IN_A_FRESH_PROCESS, str(root), "interrupted", *_THREAD_CASES],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {case: (result, root / case) for case, result in json.loads(done.stdout.splitlines()[-1]).items()}


def test_an_export_interrupted_while_importing_the_exporter_works_when_run_again(exports_in_a_fresh_process):
    """A notebook's stop button during the first export's imports left onnxscript half imported: every
    later export in that kernel failed with "module 'onnxscript' has no attribute 'values'" until a restart."""
    result, folder = exports_in_a_fresh_process["interrupted"]
    assert result["fired"], "the exporter's first imports were not interrupted: the case was not reproduced"
    assert result["errors"] == [], result["errors"]
    assert onnx.load(str(folder / "m.onnx")).graph.node
    assert [p.name for p in folder.iterdir()] == ["m.onnx"]  # no partial file left by the interrupted one


@pytest.mark.parametrize("case", _THREAD_CASES)
def test_an_export_off_the_main_thread_of_a_model_it_cannot_hand_over_runs_here(case, exports_in_a_fresh_process):
    """A model class defined in a script or a notebook (``__main__``) loads in no other process, and one holding a
    lambda does not pickle: an export off the main thread (live mode's warm-up) then runs in this process, as
    before the export process, rather than failing; whether or not the model was saved ahead on the main thread."""
    result, folder = exports_in_a_fresh_process[case]
    assert result["errors"] == [], result
    why = "could not rebuild the model" if case.startswith("main") else "cannot be handed to an export process"
    assert any(why in line for line in result["said"]), result["said"]
    out = folder / "m.onnx"
    assert onnx.load(str(out)).graph.node
    left = [p.name for p in folder.rglob("*") if p.is_file() and p != out]
    assert left == [], f"files left behind: {left}"


class PicklesSeen(torch.nn.Conv2d):
    """A model that notes the thread each pickling of it runs on (importable by the export process: this module)."""

    threads: list = []

    def __getstate__(self):
        import threading

        PicklesSeen.threads.append(threading.current_thread().name)
        return super().__getstate__()


def test_a_model_saved_ahead_is_handed_to_the_export_process_without_pickling_on_the_exporting_thread(tmp_path, monkeypatch):
    """Live mode exports on its niced warm-up thread, and handing the model over pickled it there: Python holding the
    interpreter lock, which on a loaded machine kept a Ctrl-C or SIGTERM waiting 2-4 s. Saved ahead on the main thread
    (``saved_for_export``, where a stop interrupts it), the thread that exports pickles nothing; the export is whole
    and the saved file is gone once the block ends."""
    import threading

    from birefvid.backends import export

    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))
    model = PicklesSeen(3, 1, 1)
    PicklesSeen.threads.clear()
    errors: list = []

    def work() -> None:
        try:
            export.export_onnx(model, tmp_path / "m.onnx", (8, 8))
        except BaseException as exc:  # noqa: BLE001 - said below
            errors.append(exc)

    with export.saved_for_export(model):
        thread = threading.Thread(target=work, name="exporting")
        thread.start()
        thread.join(300)
    assert not errors and not thread.is_alive(), errors
    assert PicklesSeen.threads == [threading.current_thread().name], PicklesSeen.threads
    assert onnx.load(str(tmp_path / "m.onnx")).graph.node
    assert [p.name for p in (tmp_path / "cache" / "onnx").iterdir()] == [], "the saved model was left in the cache"


_CTRL_C_AFTER_OPENVINO_MODELS_GO = """
import gc, os, signal, sys, time
import torch
from birefvid.models import BiRefNet
from birefvid.runtime import Segmenter

model = BiRefNet("pvt_v2_b0").eval()
model.load_state_dict(torch.load(sys.argv[1], weights_only=True))
frame = torch.zeros((1, 3, 64, 64), dtype=torch.uint8)
first = Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="openvino")
first.predict(frame)
second = Segmenter(module=model, resolution=64, device="cpu", precision="fp32", backend="openvino")
second.predict(frame)
del first  # released in the order they were made, as an API user's models or a watch's runs may be
gc.collect()
del second
gc.collect()
try:
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
    time.sleep(5)
except KeyboardInterrupt:
    print("stopped")
"""


def test_ctrl_c_after_two_openvino_models_were_released_is_a_stop_not_a_segfault(pvt_b0_weights):
    """Each OpenVINO Core loads a CPU plugin of its own, which gives the thread that loads it a new signal stack and
    unmaps that stack when it is released, restoring the previous one only when its own is still the thread's. Two
    models released in the order they were made left the thread's signal stack on unmapped memory: the next Ctrl-C
    (or SIGTERM), whose handler runs there, was a SIGSEGV (exit 139, no traceback, no clean-up) where the process
    should stop. It ended pytest workers of this suite that pressed Ctrl-C after the OpenVINO tests. In a process of its
    own, as a user's is, since the failure ends the process."""
    need_module("openvino", "openvino")
    import subprocess

    done = subprocess.run([sys.executable, "-c", _CTRL_C_AFTER_OPENVINO_MODELS_GO, str(pvt_b0_weights)], capture_output=True,
                          text=True, timeout=600)  # two ONNX exports on a slow machine, when the session has none cached
    assert done.returncode == 0 and done.stdout.strip() == "stopped", (done.returncode, done.stderr[-3000:])

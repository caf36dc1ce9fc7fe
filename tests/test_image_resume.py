"""``birefvid image --skip-existing``: a rerun over a big folder goes on where an interrupted run stopped,
instead of refusing (without --overwrite) or redoing every picture (with it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from birefvid.cli import main

SIZE = (64, 48)


def _photos(folder: Path, n: int) -> list[Path]:
    from process_fixtures import scene_frame

    folder.mkdir()
    paths = []
    for i in range(n):
        paths.append(folder / f"IMG_{i:04d}.png")
        Image.fromarray(np.roll(scene_frame(0, SIZE, False), 4 * i, axis=1)).save(paths[-1])
    return paths


def test_a_rerun_keeps_what_was_written_and_cuts_out_the_rest(tmp_path, red_key, capsys):
    photos, out = _photos(tmp_path / "photos", 4), tmp_path / "cut"
    out.mkdir()
    # an interrupted run wrote the first two (outputs are atomic: an existing file is whole)
    for photo in photos[:2]:
        Image.new("RGBA", SIZE, (1, 2, 3, 4)).save(out / photo.name)
    assert main(["image", str(tmp_path / "photos"), "-o", str(out)]) == 2  # without the flag: refused, nothing lost
    assert "output exists" in capsys.readouterr().err
    assert main(["image", str(tmp_path / "photos"), "-o", str(out), "--skip-existing"]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"wrote 2 pictures in {out} (2 already there kept)"
    for photo in photos[:2]:  # kept as they were
        assert np.array(Image.open(out / photo.name))[0, 0].tolist() == [1, 2, 3, 4]
    for photo in photos[2:]:  # cut out now: a real matte
        alpha = np.array(Image.open(out / photo.name))[..., 3]
        assert alpha.min() == 0 and alpha.max() == 255


def test_the_refusal_names_skip_existing(tmp_path, capsys):
    photos, out = _photos(tmp_path / "photos", 2), tmp_path / "cut"
    out.mkdir()
    Image.new("RGBA", SIZE).save(out / photos[0].name)  # an interrupted run's first picture
    assert main(["image", str(tmp_path / "photos"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"output exists: {out / photos[0].name}" in err and "--skip-existing" in err  # how to resume, not only --overwrite


def test_nothing_left_to_do_loads_no_model(tmp_path, monkeypatch, capsys):
    photos, out = _photos(tmp_path / "photos", 2), tmp_path / "cut"
    out.mkdir()
    for photo in photos:
        Image.new("RGBA", SIZE).save(out / photo.name)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded with nothing to do")

    monkeypatch.setattr("birefvid.runtime.file_job.segmenter_for", no_model)
    assert main(["image", str(tmp_path / "photos"), "-o", str(out), "--skip-existing"]) == 0
    assert "nothing to do: all 2 pictures are in" in capsys.readouterr().err


def test_skip_existing_and_overwrite_contradict(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["image", str(tmp_path), "-o", str(tmp_path / "cut"), "--skip-existing", "--overwrite"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err

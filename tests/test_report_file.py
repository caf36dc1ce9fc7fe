"""``--report FILE`` that cannot be written (``commands/report_file.py``): one error line that says what the run
kept, in ``live``'s words (recordings) and ``image``'s (pictures), for none, one and several files."""

from __future__ import annotations

import argparse
import json

import pytest

from birefvid.commands import image, live
from birefvid.errors import SinkError


def _live(path, names):
    live._write_report(path, {"recorded": {"gate.mkv": list(names), "window": []}})


def _image(path, names):
    image._write_report(argparse.Namespace(report=path), {"written": list(names)}, list(names))


@pytest.mark.parametrize("write,names,ending", [
    (_live, [], r""),
    (_live, ["gate.mkv"], r"; the recording gate\.mkv was written and kept"),
    (_live, ["gate-1.mkv", "gate-2.mkv", "gate-3.mkv"], r"; the 3 recorded files \(gate-1\.mkv to gate-3\.mkv\) were written and kept"),
    (_image, [], r""),
    (_image, ["out/a.png"], r"; the picture out/a\.png was written and kept"),
    (_image, ["out/a.png", "out/b.png"], r"; the 2 pictures \(out/a\.png to out/b\.png\) were written and kept"),
])  # fmt: skip
def test_an_unwritable_report_says_what_was_kept(tmp_path, write, names, ending):
    target = tmp_path / "gone" / "r.json"
    with pytest.raises(SinkError, match=rf"report .*r\.json: cannot write it \(No such file or directory\){ending}$"):
        write(str(target), names)
    assert not target.parent.exists()


@pytest.mark.parametrize("write,whole", [
    (_live, {"recorded": {"gate.mkv": ["a.mkv", "b.mkv"], "window": []}}),
    (_image, {"written": ["a.mkv", "b.mkv"]}),
])  # fmt: skip
def test_a_writable_report_is_the_whole_json(tmp_path, write, whole):
    target = tmp_path / "r.json"
    write(str(target), ["a.mkv", "b.mkv"])
    assert json.loads(target.read_text()) == whole  # ("a" was in any live report: "gate.mkv" has one)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left beside it

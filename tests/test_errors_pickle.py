"""Every ``BirefvidError`` survives pickling as itself: same class, message and attributes.

A Ray worker's error reaches the driver pickled (a process pool's too). An error class whose ``__init__`` takes more
than its message (``SourceLost``'s ``report``) could not be made again from its one pickled argument: the driver got
Ray's "Failed to deserialize exception" and a page of traceback instead of the one line. The test walks every
subclass birefvid defines, so a new one with arguments of its own is checked without anyone remembering to.
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import pytest

import birefvid
from birefvid.errors import BirefvidError


def _all_error_classes() -> list[type[BirefvidError]]:
    """Every subclass of BirefvidError in birefvid's modules (those whose optional extras are installed)."""
    for module in pkgutil.walk_packages(birefvid.__path__, "birefvid."):
        if not module.name.endswith("__main__"):
            try:
                importlib.import_module(module.name)
            except ImportError:  # an optional extra (ray, decord, ...) not installed here
                pass
    found, todo = set(), [BirefvidError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("birefvid.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found | {BirefvidError}, key=lambda c: f"{c.__module__}.{c.__qualname__}")


# how each class is raised: the arguments of its __init__ (those that take more than a message)
EXTRA_ARGUMENTS = {
    "PipelineError": ("decode", "frame 12 could not be read"),
    "OutputKeptError": ("out.mp4 was taken; kept as out.1.mp4", "/videos/out.1.mp4"),
    "InputsSkipped": ("2 of 5 inputs skipped", ["a.mp4", "b.mp4"]),
    "NoFirstPicture": ("no picture from rtsp://cam within 10 s", "connection refused"),
    "SourceLost": ("the source was lost", {"ended_by": "source lost", "frames": 120}),
}


@pytest.mark.parametrize("kind", _all_error_classes(), ids=lambda kind: kind.__qualname__)
def test_an_error_comes_back_from_a_pickle_as_it_was(kind):
    args = EXTRA_ARGUMENTS.get(kind.__name__, ("something went wrong",))
    error = kind(*args)
    error.report = {"error": str(error)}  # set after raising, as live mode and batch do
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is kind
    assert str(back) == str(error) and back.args == error.args
    assert vars(back) == vars(error)  # its own attributes (stage, kept, inputs, report, ...) and what was set on it


def test_every_error_class_that_takes_more_than_a_message_is_tried_with_its_arguments():
    """A new class whose __init__ needs more arguments fails above, at kind(message), until it is listed here."""
    for kind in _all_error_classes():
        if kind.__name__ not in EXTRA_ARGUMENTS:
            kind("something went wrong")

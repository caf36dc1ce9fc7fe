"""A decoded frame's side data (display matrix, HDR10 metadata) read the same under every PyAV we allow.

PyAV 18.1.1 made ``frame.side_data`` iterate its types, as the ``Mapping`` it is declared, where 18.1.0 and earlier gave
the entries themselves: code looping over it read ``Type.type`` and every clip with side data (any x264 clip carries
its encoder's SEI) ended in ``AttributeError``. Its newest types also need naming (``_name_unknown_side_data``)."""

from __future__ import annotations

import av
from av.sidedata.sidedata import SideData, Type


def side_data(frame: av.VideoFrame) -> list[SideData]:
    """``frame``'s side data entries, in PyAV's order, whichever PyAV iterates (entries before 18.1.1, types since)."""
    entries = frame.side_data
    return [entries[item] if isinstance(item, Type) else item for item in entries]


def _name_unknown_side_data() -> None:
    """Let PyAV name a frame's side data of a type newer than its ``sidedata.Type`` (``UNKNOWN_31``), where it raised.

    PyAV builds every frame's ``side_data`` at once and names each entry, and its table stops at VIDEO_HINT (27) while
    the FFmpeg it ships (8.0) attaches newer ones: EXIF (31) to every JPEG, PNG, WebP or TIFF picture that has EXIF,
    and so to each frame of a camera's Motion JPEG clip; VIEW_ID (29) to MV-HEVC (an iPhone's spatial video). Reading
    any side data of such a frame (the display matrix, HDR10's) raised ``ValueError: 31 is not a valid Type``: the run
    ended in a traceback. Unknown types now read as pseudo-members nobody asks for; known ones are untouched."""
    if getattr(Type, "_birefvid_unknown", False):
        return

    def _missing_(cls: type, value: object) -> object:
        if not isinstance(value, int) or value < 0:
            return None
        member = cls._value2member_map_.get(value)
        if member is None:
            member = object.__new__(cls)
            member._name_, member._value_ = f"UNKNOWN_{value}", value
            member = cls._value2member_map_.setdefault(value, member)
        return member

    Type._missing_ = classmethod(_missing_)  # type: ignore[method-assign,assignment]
    Type._birefvid_unknown = True  # type: ignore[attr-defined]


_name_unknown_side_data()

"""HDR10's static metadata (SMPTE ST 2086 mastering display, MaxCLL/MaxFALL), read from a source's first frame
and written again by x265: players and TVs tone-map PQ video by it, and without it assume defaults
(a 1000 or 4000 cd/m² master) that darken or clip a phone's or camera's grade.

FFmpeg hands it out as frame side data (``AVMasteringDisplayMetadata``, ``AVContentLightMetadata``); PyAV
cannot attach it to an encoder, so it goes to libx265 as its ``master-display`` and ``max-cll`` parameters."""

from __future__ import annotations

import struct
from typing import Optional

import av

from birefvid.io.side_data import side_data

_MASTERING, _LIGHT = "MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"


def _ratio(num: int, den: int, scale: int) -> int:
    return round(num * scale / den) if den else 0


def x265_hdr10(frame: av.VideoFrame) -> Optional[str]:
    """``frame``'s HDR10 metadata in x265's syntax (``master-display=G(..)B(..)R(..)WP(..)L(max,min):max-cll=C,F``), else None."""
    params = []
    for data in side_data(frame):
        kind = getattr(data.type, "name", "")
        raw = bytes(data)
        if kind == _MASTERING and len(raw) >= 88:
            values = struct.unpack_from("<20i2i", raw)  # 10 AVRationals (R, G, B x/y, white x/y, min, max), has_primaries, has_luminance
            pairs = list(zip(values[0:20:2], values[1:20:2]))
            if not (values[20] and values[21]):
                continue  # x265 needs both the primaries and the luminance
            (rx, ry, gx, gy, bx, by, wx, wy) = (_ratio(n, d, 50000) for n, d in pairs[:8])  # x265's units: 0.00002
            low, high = (_ratio(n, d, 10000) for n, d in pairs[8:])  # 0.0001 cd/m²
            params.append(f"master-display=G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({high},{low})")
        elif kind == _LIGHT and len(raw) >= 8:
            cll, fall = struct.unpack_from("<2I", raw)
            params.append(f"max-cll={cll},{fall}")
    return ":".join(params) or None

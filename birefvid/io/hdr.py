"""HDR video (PQ or HLG, BT.2020) shown as SDR for outputs that cannot say their colours are HDR.

A GIF, an animated WebP or APNG, or a PNG sequence has no field for a video's colour tags: every
viewer shows its pixels as sRGB. An iPhone's HLG or an Android's PQ (HDR10) clip written there with
its signal values as they are came out grey and washed out (PQ puts a white shirt at ~58% of the
range) and desaturated (BT.2020 primaries read as sRGB's). Those outputs get the picture converted
as an SDR screen would show it instead, following ITU-R BT.2408: the signal to display light (PQ's
EOTF; HLG's inverse OETF and its OOTF for a 1000 cd/m² display), HDR reference white (203 cd/m²)
to SDR white, BT.2020 to BT.709 primaries, highlights above 80% of SDR white rolled off smoothly
instead of clipped, and sRGB's curve. Video containers keep the HDR signal with its tags instead;
the model is fed the SDR picture either way (``SdrForModel``, ``Frame.seen``): it knows SDR pictures.
Written here, not with FFmpeg's filters: its ``tonemap`` takes linear-light float input, which only
``zscale`` (libzimg) makes, and PyAV's wheels have no ``zscale``.

The other way round, ``SdrToHdr``: a ``--background`` (a colour, an sRGB picture or an SDR video)
composited into a video that stays HDR is converted to its signal, SDR white at HDR reference white,
as BT.2408 places SDR content in HDR: ``white`` had been PQ's 10 000 cd/m², 50 times the subject's white.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from birefvid.frames import Frame, StreamInfo
from birefvid.io.base import Source
from birefvid.io.factory import is_sequence_target
from birefvid.io.formats import is_animation_target

log = logging.getLogger(__name__)

# transfer characteristics (AVColorTransferCharacteristic) of HDR video: SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG)
PQ, HLG = 16, 18
HDR_NAMES = {PQ: "PQ", HLG: "HLG"}
BT2020 = 9  # AVColorPrimaries
REFERENCE_WHITE = 203.0  # cd/m²: HDR's diffuse white, what SDR white shows (ITU-R BT.2408)
HLG_PEAK = 1000.0  # cd/m²: the display HLG's OOTF is computed for (BT.2100's reference)
KNEE = 0.8  # SDR level (linear) above which highlights are rolled off towards white
# linear BT.2020 RGB -> linear BT.709 RGB
BT2020_TO_BT709 = np.array(
    [[1.660491, -0.587641, -0.072850], [-0.124550, 1.132900, -0.008349], [-0.018151, -0.100579, 1.118730]], np.float32
)
BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]], np.float32)
BT2020_LUMA = np.array([[0.2627, 0.6780, 0.0593]], np.float32)
SDR_TAGS = {"color_primaries": 1, "color_trc": 13, "colorspace": 1}  # BT.709 primaries, sRGB curve


def hdr_transfer(info: StreamInfo) -> Optional[str]:
    """``"PQ"`` or ``"HLG"`` for an HDR stream, None for SDR."""
    return HDR_NAMES.get(info.color_trc) if isinstance(info.color_trc, int) else None


def shows_hdr_as_sdr(output: str | Path, info: StreamInfo) -> bool:
    """Whether ``output`` cannot carry ``info``'s HDR tags (an animated picture or a PNG sequence) and so gets SDR pictures."""
    return hdr_transfer(info) is not None and (is_animation_target(output) or is_sequence_target(output))


def _pq_to_relative(signal: np.ndarray) -> np.ndarray:
    """PQ signal [0, 1] -> display light, 1.0 at HDR reference white (SMPTE ST 2084's EOTF)."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(signal, 1 / m2)
    return np.power(np.maximum(p - c1, 0) / (c2 - c3 * p), 1 / m1) * (10000.0 / REFERENCE_WHITE)


def _hlg_to_scene(signal: np.ndarray) -> np.ndarray:
    """HLG signal [0, 1] -> scene light [0, 1] (ARIB STD-B67's inverse OETF)."""
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    with np.errstate(over="ignore"):
        high = (np.exp((signal - c) / a) + b) / 12
    return np.where(signal <= 0.5, signal * signal / 3, high)


def _linear_tables() -> dict[int, np.ndarray]:
    """Each 16-bit code's light: PQ's display light relative to reference white, HLG's scene light."""
    codes = np.arange(65536, dtype=np.float64) / 65535
    return {PQ: _pq_to_relative(codes).astype(np.float32), HLG: _hlg_to_scene(codes).astype(np.float32)}


def _sdr_table(levels: int) -> np.ndarray:
    """Linear SDR light x >= 0, indexed by x / (1 + x) in 65536 steps -> sRGB code in [0, levels]: the roll-off, then sRGB's curve."""
    t = np.minimum(np.arange(65536, dtype=np.float64) / 65535, 1 - 1e-9)
    x = t / (1 - t)
    rolled = np.where(x <= KNEE, x, KNEE + (1 - KNEE) * (1 - np.exp(-(x - KNEE) / (1 - KNEE))))
    srgb = np.where(rolled <= 0.0031308, 12.92 * rolled, 1.055 * np.power(rolled, 1 / 2.4) - 0.055)
    return np.round(np.clip(srgb, 0, 1) * levels).astype(np.uint16 if levels > 255 else np.uint8)


def _kind_of(output: str) -> str:
    """How a message names the output: "GIF", "WEBP", "APNG" or "a PNG sequence"."""
    return Path(output).suffix.lstrip(".").upper() if is_animation_target(output) else "a PNG sequence"


class HdrToSdr:
    """Converts one stream's HDR RGB pictures (uint8 or uint16, the PQ or HLG signal) to SDR sRGB (uint8 and uint16).

    Three table look-ups and two 3x3 products a pixel (~20 ms of CPU a 720p frame here).
    """

    def __init__(self, transfer: int, bt2020: bool = True) -> None:
        self.transfer = transfer
        self._linear = _linear_tables()[transfer]
        matrix = BT2020_TO_BT709 if bt2020 else np.eye(3, dtype=np.float32)
        self._matrix = matrix * (HLG_PEAK / REFERENCE_WHITE if transfer == HLG else 1.0)
        self._to8, self._to16 = _sdr_table(255), _sdr_table(65535)

    def light(self, picture: np.ndarray) -> np.ndarray:
        """Linear BT.709 light (H, W, 3) float32, 1.0 at SDR white (negative where out of its gamut)."""
        codes = picture.astype(np.uint16) * 257 if picture.dtype == np.uint8 else picture
        light = self._linear[codes]
        if self.transfer == HLG:  # the OOTF: display light = peak * Ys^(1.2 - 1) * scene light
            luma = cv2.transform(light, BT2020_LUMA)
            light *= np.power(np.maximum(luma, 0), 0.2)[..., None]
        return cv2.transform(light, self._matrix)

    def __call__(self, picture: np.ndarray, deep: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """``picture`` as SDR: (uint8 RGB, uint16 RGB when ``deep``, else None)."""
        light = np.maximum(self.light(picture), 0)
        index = np.rint(light / (1 + light) * 65535).astype(np.uint16)
        return self._to8[index], (self._to16[index] if deep else None)


def _srgb_to_linear(levels: int) -> np.ndarray:
    """Each code's linear light under sRGB's curve, for codes 0..``levels``."""
    s = np.arange(levels + 1, dtype=np.float64) / levels
    return np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _pq_signal(nits: np.ndarray) -> np.ndarray:
    """Display light in cd/m² -> PQ signal [0, 1] (SMPTE ST 2084's inverse EOTF)."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = np.power(np.clip(nits / 10000.0, 0, 1), m1)
    return np.power((c1 + c2 * y) / (1 + c3 * y), m2)


def _hlg_signal(nits: np.ndarray) -> np.ndarray:
    """Display light in cd/m² (BT.2020 RGB) -> HLG signal [0, 1]: BT.2100's inverse OOTF for a 1000 cd/m² display, then the OETF."""
    luma = np.maximum(cv2.transform(nits, BT2020_LUMA), 1e-6)[..., None]
    scene = np.clip(nits / HLG_PEAK * np.power(luma / HLG_PEAK, -0.2 / 1.2), 0, 1)
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)


class SdrToHdr:
    """Converts SDR sRGB pictures (uint8 or uint16 RGB) to an HDR video's PQ or HLG signal, in the same
    sample type: SDR white at HDR reference white (203 cd/m²), BT.709 colours placed in BT.2020."""

    def __init__(self, transfer: int, bt2020: bool = True) -> None:
        self.transfer = transfer
        matrix = BT709_TO_BT2020 if bt2020 else np.eye(3, dtype=np.float32)
        self._matrix = matrix * REFERENCE_WHITE
        self._linear = {np.dtype(np.uint8): _srgb_to_linear(255), np.dtype(np.uint16): _srgb_to_linear(65535)}

    def __call__(self, picture: np.ndarray) -> np.ndarray:
        """``picture`` (H, W, 3) as the HDR signal, uint8 or uint16 as given."""
        nits = cv2.transform(self._linear[picture.dtype][picture], self._matrix)
        signal = _pq_signal(nits) if self.transfer == PQ else _hlg_signal(nits)
        return np.round(signal * np.iinfo(picture.dtype).max).astype(picture.dtype)


def hdr_output(info: StreamInfo) -> Optional[SdrToHdr]:
    """What an SDR picture (a background) goes through to join ``info``'s pictures: None for SDR video."""
    if hdr_transfer(info) is None:
        return None
    return SdrToHdr(int(info.color_trc), bt2020=info.color_primaries in (None, 2, BT2020))  # type: ignore[arg-type]


def _to_sdr(info: StreamInfo) -> HdrToSdr:
    """The conversion of ``info``'s pictures (PQ or HLG video, BT.2020 unless tagged otherwise) to SDR."""
    transfer = info.color_trc
    assert isinstance(transfer, int) and transfer in HDR_NAMES, "only PQ or HLG video is converted to SDR"
    return HdrToSdr(transfer, bt2020=info.color_primaries in (None, 2, BT2020))


def live_sdr(info: StreamInfo, name: str) -> Optional[HdrToSdr]:
    """The SDR conversion of an HDR live source (None for SDR), with one warning: live mode works in 8-bit SDR,
    and fed the PQ/HLG signal as it is, ``tiny`` found nothing (IoU 0.00) where it found 0.93 in SDR."""
    if hdr_transfer(info) is None:
        return None
    convert = _to_sdr(info)
    log.warning("%s is HDR (%s): live mode shows and records it as SDR (sRGB), as an SDR screen shows it",
                name, HDR_NAMES[convert.transfer])  # fmt: skip
    return convert


class SdrSource(Source):
    """``inner``'s HDR frames shown as SDR (see the module): for an output that cannot say it holds HDR.

    Converted from ``inner``'s 16-bit pictures when it delivers them (ask it before wrapping: PQ's
    SDR range spans ~150 of 256 8-bit steps); ``keep_deep``: frames keep a 16-bit SDR picture too.
    """

    def __init__(self, inner: Source, output: str, *, keep_deep: bool = False, name: str = "the input") -> None:
        super().__init__()
        self.inner = inner
        self._convert = _to_sdr(inner.info)
        self._keep_deep = keep_deep
        self._info = dataclasses.replace(inner.info, **SDR_TAGS)
        log.warning("%s is HDR (%s), which %s cannot mark as such: its colours are converted to SDR (sRGB), as an SDR screen "
                    "shows them; write .mov or .mkv to keep the HDR", name, HDR_NAMES[self._convert.transfer], _kind_of(output))  # fmt: skip

    @property
    def info(self) -> StreamInfo:
        return self._info

    def deliver_deep(self) -> bool:
        return self._keep_deep

    def __iter__(self) -> Iterator[Frame]:
        self._claim_iteration()
        return self._iter()

    def _iter(self) -> Iterator[Frame]:
        for frame in self.inner:
            image, deep = self._convert(frame.deep if frame.deep is not None else frame.image, deep=self._keep_deep)
            yield dataclasses.replace(frame, image=image, deep=deep)

    def _close(self) -> None:
        self.inner.close()


class SdrForModel(Source):
    """``inner``'s HDR frames as they are, each with its SDR picture (``Frame.seen``) for the model: an output
    that keeps the HDR signal still gets its subject found in the pictures the model knows.

    Fed PQ or HLG signal as it is, ``tiny`` found nothing in a generated scene it cuts out of the SDR
    clip at 0.89 IoU (0.00 for both), since HDR puts white at 58% (PQ) or 75% (HLG) of the range.
    The conversion costs 15-20 ms of CPU a 720p frame, on the decoding thread.
    """

    def __init__(self, inner: Source) -> None:
        super().__init__()
        self.inner = inner
        self._convert = _to_sdr(inner.info)

    @property
    def info(self) -> StreamInfo:
        return self.inner.info

    def deliver_deep(self) -> bool:
        return self.inner.deliver_deep()

    def __iter__(self) -> Iterator[Frame]:
        self._claim_iteration()
        return self._iter()

    def _iter(self) -> Iterator[Frame]:
        for frame in self.inner:
            seen, _ = self._convert(frame.deep if frame.deep is not None else frame.image)
            yield dataclasses.replace(frame, seen=seen)

    def _close(self) -> None:
        self.inner.close()


def sdr_sources(source: Source, output: str, *, keep_deep: bool, name: str, stack: contextlib.ExitStack) -> Source:
    """``source`` wrapped (and entered in ``stack``) so the model sees SDR pictures of HDR video, and an output
    that cannot say it holds HDR gets them too (``SdrSource``); SDR video is returned as it is."""
    if hdr_transfer(source.info) is None:
        return source
    if shows_hdr_as_sdr(output, source.info):
        return stack.enter_context(SdrSource(source, output, keep_deep=keep_deep, name=name))
    return stack.enter_context(SdrForModel(source))

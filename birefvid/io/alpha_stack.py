"""The preview's ``/alpha.mjpg``: each picture and its matte in one JPEG, so a browser (OBS's Browser Source)
shows the subject over transparency with the model's soft edge, colour and matte never a frame apart.

Layout of a picture H rows tall: the colour in rows 0..H-1, its last row repeated down to the next multiple
of 16, then 16 guard rows (the matte's first row repeated), then the matte as grey in the last H rows (the JPEG is 16*ceil(H/16) + 16 + H rows
tall; a reader finds H from that alone). JPEG's 4:2:0 chroma is coded in 16x16 blocks and decoders blend
each chroma row with the next one: the 16-row boundary and the guard keep the colour's chroma out of the
matte, whose pixels stay grey (R = G = B). JPEG is full range (0-255), so 0 and 255 need no range mapping.
"""

from __future__ import annotations

import cv2
import numpy as np

from birefvid.errors import SinkError
from birefvid.io.live_base import picture_kind

GUARD = 16  # rows between the colour and the matte (one 4:2:0 block)
QUALITY = 95  # the matte within 3 grey levels at p99.9 (8-11 at most, beside hard edges), ~190 KB a 720p frame
LOW, HIGH = 8, 247  # the page reads grey <= LOW as 0 and >= HIGH as 255: JPEG's ringing beside a hard edge stays invisible


def matte_row(height: int) -> int:
    """The first row of the matte in the stacked picture of a ``height``-row picture."""
    return -(-height // 16) * 16 + GUARD


def stacked_bgr(picture: np.ndarray) -> np.ndarray:
    """(rows, W, 3) uint8 BGR, as OpenCV encodes: the colour of ``picture`` above its matte (see the module's
    layout); rgb and gray pictures carry no matte, so theirs is white (opaque). Built with OpenCV's copies:
    numpy's channel slicing took 7 ms a 720p picture, these take under 1."""
    kind = picture_kind(picture)
    height, width = picture.shape[:2]
    top = matte_row(height)
    out = np.empty((top + height, width, 3), np.uint8)
    code = {"rgba": cv2.COLOR_RGBA2BGR, "rgb": cv2.COLOR_RGB2BGR, "gray": cv2.COLOR_GRAY2BGR}[kind]
    cv2.cvtColor(np.ascontiguousarray(picture), code, dst=out[:height])
    if kind == "rgba":
        cv2.cvtColor(cv2.extractChannel(picture, 3), cv2.COLOR_GRAY2BGR, dst=out[top:])
    else:
        out[top:] = 255
    pad = top - GUARD
    out[height:pad] = out[height - 1 : height]  # the colour's last row repeated: no edge for JPEG to ring on
    out[pad:top] = out[top : top + 1]  # the guard: the matte's first row, grey, so no colour reaches the matte
    return out


def stacked_jpeg(picture: np.ndarray, quality: int = QUALITY) -> bytes:
    """JPEG bytes (4:2:0, full range) of ``stacked_bgr(picture)``."""
    ok, data = cv2.imencode(".jpg", stacked_bgr(picture), [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                                           cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])  # fmt: skip
    if not ok:
        raise SinkError(f"JPEG encoding of a {picture.shape} picture failed")
    return data.tobytes()


# ?alpha (for OBS: /?picture&alpha): the page's #picture is a canvas; /alpha.mjpg is read with fetch as fast as it
# comes, and only the newest whole JPEG is kept for the drawing loop (read one part per drawing, a slow page showed
# pictures seconds old: the browser's and the sockets' buffers held hundreds of them), each decoded off the
# main thread and joined into straight RGBA (ImageData is straight alpha: the canvas premultiplies it itself, so
# the edge is neither darkened nor haloed). cutout() (re)opens the stream; the page's poll calls it when a run
# answers again, as it reopens /stream.mjpg.
SCRIPT = """<script>
const ALPHA = new Uint32Array(256);
for (let g = 0; g < 256; g++) ALPHA[g] = Math.round(Math.min(Math.max((g - %(low)d) * 255 / (%(high)d - %(low)d), 0), 255));
const joint = new OffscreenCanvas(1, 1), jctx = joint.getContext("2d", {willReadFrequently: true});
const shown = picture.getContext("2d");
let reading = null, rgba = null;
function join(bmp) {
  const w = bmp.width, rows = bmp.height, m = Math.ceil((rows - 16) / 32), h = rows - 16 - 16 * m, top = rows - h;
  if (joint.width !== w || joint.height !== rows) { joint.width = w; joint.height = rows; }
  jctx.drawImage(bmp, 0, 0);
  const src = new Uint32Array(jctx.getImageData(0, 0, w, rows).data.buffer);
  if (!rgba || rgba.width !== w || rgba.height !== h) rgba = new ImageData(w, h);
  const out = new Uint32Array(rgba.data.buffer), off = top * w;
  for (let i = 0, n = w * h; i < n; i++) out[i] = (src[i] & 0xffffff) | (ALPHA[(src[off + i] >> 8) & 255] << 24);
  if (picture.width !== w || picture.height !== h) { picture.width = w; picture.height = h; }
  shown.putImageData(rgba, 0, 0);
}
function find(buf, text, from) {
  outer: for (let i = from; i <= buf.length - text.length; i++) {
    for (let k = 0; k < text.length; k++) if (buf[i + k] !== text.charCodeAt(k)) continue outer;
    return i;
  }
  return -1;
}
async function cutout() {
  if (reading) reading.abort();
  const stop = reading = new AbortController();
  try {
    const r = await fetch(at("/alpha.mjpg?" + Date.now()), {signal: stop.signal, cache: "no-store"});
    if (!r.ok || !r.body) throw new Error(r.status);
    const reader = r.body.getReader();
    let buf = new Uint8Array(0), newest = null, drawing = false;
    const draw = async () => {  // the newest JPEG whenever the last one is drawn: a slow page skips pictures, never lags
      drawing = true;
      try {
        while (newest && reading === stop) {
          const jpeg = newest;
          newest = null;
          const bmp = await createImageBitmap(new Blob([jpeg], {type: "image/jpeg"}), {colorSpaceConversion: "none"});
          if (reading === stop) join(bmp);
          bmp.close();
        }
      } catch (e) {  // a picture that does not decode is skipped
      } finally { drawing = false; }
    };
    for (;;) {
      const end = find(buf, "\\r\\n\\r\\n", 0);
      const size = end < 0 ? -1 : Number((/content-length: *(\\d+)/i.exec(new TextDecoder().decode(buf.subarray(0, end))) || [])[1]);
      if (end >= 0 && !(size >= 0)) throw new Error("a part without its Content-Length");  // else buf grew for ever
      if (end >= 0 && buf.length >= end + 4 + size) {
        newest = buf.slice(end + 4, end + 4 + size);
        buf = buf.subarray(end + 4 + size);
        if (!drawing) draw();
        continue;
      }
      const {value, done} = await reader.read();
      if (done) break;
      const more = new Uint8Array(buf.length + value.length);
      more.set(buf); more.set(value, buf.length);
      buf = more;
    }
  } catch (e) {
    if (stop.signal.aborted) return;
  }
  if (reading === stop && !gone) setTimeout(() => { if (reading === stop) cutout(); }, 2000);
}
cutout();
</script>
""" % {"low": LOW, "high": HIGH}

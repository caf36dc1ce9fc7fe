"""File extensions birefvid treats as still images and as videos (one definition for every module)."""

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
# masks are read from these too: OpenEXR, as compositing apps (Nuke, Blender) and matting renders save float alpha;
# not pictures to segment (scene-linear light, see io.plate_formats)
MASK_EXTENSIONS = IMAGE_EXTENSIONS | {".exr"}
# with the cameras' and broadcast's own: MXF (XDCAM, XAVC, P2, Canon, ARRI, Avid), AVCHD's .mts/.m2ts, HDV's .m2t,
# DV, a phone's .3gp; a folder given to `batch` left them out without a word
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".mpg", ".mpeg", ".ts",
                              ".mxf", ".mts", ".m2ts", ".m2t", ".dv", ".3gp", ".wmv", ".ogv"})
# MPEG-TS endings: at an http(s) URL such a name may be a live stream, so `live` reads it as one, not as a file
TS_EXTENSIONS = frozenset({".ts", ".mts", ".m2ts", ".m2t"})
# endings that may name a live stream at an http(s) URL: MPEG-TS's, and Ogg video's, an Icecast mount's (cam.ogv),
# which read as a file ended the run when the connection dropped instead of reconnecting
URL_STREAM_EXTENSIONS = TS_EXTENSIONS | {".ogv"}
# an iPhone's photos: read through the optional pillow-heif (birefvid[heic]), by `image` only
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
# what Pillow calls the pictures `image` reads, and the name each is read under when it comes as bytes, with no name
# of its own (a `serve` request's body, `image -`'s standard input)
PILLOW_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif",
                   "AVIF": ".avif", "HEIF": ".heic"}  # fmt: skip


# a batch's image-sequence ``--ext`` values, each as its ways of writing it: a folder of pictures a video
BATCH_SEQUENCES = {"png": ("png", ".png"), "tif": ("tif", ".tif", "tiff", ".tiff"), "exr": ("exr", ".exr")}


def batch_extension(text: str) -> str:
    """A batch's ``--ext`` (or ``batch_videos(ext=)``) as written: ``mov`` and ``.MOV`` both mean ``.mov``; ``png``,
    ``tif`` and ``exr``, with a dot or not (as `image --ext` writes them; ``tiff`` too), mean an image-sequence folder each,
    named without the dot (``BATCH_SEQUENCES``)."""
    text = text.strip().lower()
    sequence = next((name for name, spellings in BATCH_SEQUENCES.items() if text in spellings), None)
    return sequence or (text if text.startswith(".") else f".{text}")

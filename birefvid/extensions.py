"""File extensions birefvid treats as still images and as videos (one definition for every module)."""

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".mpg", ".mpeg", ".ts"})
# an iPhone's photos: read through the optional pillow-heif (birefvid[heic]), by `image` only
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})

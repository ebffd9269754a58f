"""The user's images: the examples and pool folders listed, and an upload opened within the app's
pixel limit for a mode (Compare and the Judge's scene pool both open images this way)."""

from pathlib import Path

from PIL import Image

from restoration.data.degrade import MODES, SCALE
from restoration.data.images import ImageError, open_image
from restoration.settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def list_images(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def input_pixel_limit(mode: str, max_pixels: int) -> int:
    """The largest input (in pixels) whose output stays within `max_pixels`: in "upscale" mode the
    output has SCALE² times the input's pixels."""
    return max_pixels if mode == "degrade" else max_pixels // (SCALE * SCALE)


def open_upload(source, mode: str, settings: Settings) -> Image.Image:
    """Open a user's image for `mode`, refusing it (ImageError) from its header when the output
    would be over the limit."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    try:
        return open_image(source, max_pixels=input_pixel_limit(mode, settings.max_pixels))
    except ImageError as e:
        if mode == "upscale" and "megapixels" in str(e):
            raise ImageError(f"{e} (Upscale ×{SCALE} makes an output with {SCALE * SCALE}× the pixels; the output "
                             f"limit is {settings.max_pixels / 1e6:.1f} megapixels.)") from None
        raise

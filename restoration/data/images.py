"""Opening images safely: every file a user or a dataset gives us goes through `open_image`.

It checks the size from the header before decoding (a decompression bomb is refused, never
decoded), applies the EXIF orientation, takes the first frame of an animation, and turns every
mode (16-bit, palette, CMYK, RGBA, grayscale, ...) into 8-bit RGB. Problems raise `ImageError`,
whose message is fit to show a user.
"""

import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 2


class ImageError(ValueError):
    """An input image that cannot be used; the message says why, in words for a user."""


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grayscale: scale the full range down to 8 bits instead of clipping at 255.
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite transparency onto white: what a viewer shows, and no hidden colours leak in.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def _name(source) -> str:
    return Path(source).name if isinstance(source, (str, Path)) else "the upload"


@contextmanager
def _readable(name: str):
    """Pillow's errors on opening `name` as an ImageError that says, in words, what is wrong."""
    try:
        yield
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name} does not exist") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image that can be read (PNG, JPEG, WebP, GIF, BMP, TIFF, ...)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is far too large to open safely") from None
    except Exception as e:  # noqa: BLE001 (corrupt files make Pillow raise struct.error, IndexError, EOFError, ...)
        raise ImageError(f"{name} could not be decoded; it may be truncated or corrupt ({e})") from None


def image_size(source) -> tuple[int, int]:
    """An image file's (width, height) from its header alone (nothing is decoded), or an
    ImageError, in the words `open_image` uses, for a file that is no image."""
    with _readable(_name(source)), Image.open(source) as img:
        return img.size


def open_image(source, max_pixels: int | None = None, min_side: int = MIN_SIDE) -> Image.Image:
    """Open a path, bytes or file object as an 8-bit RGB PIL image.

    `max_pixels` refuses larger images from their header, before any decoding.
    """
    if isinstance(source, (bytes, bytearray)):
        source, name = io.BytesIO(source), "the upload"
    else:
        name = _name(source)
    with _readable(name), Image.open(source) as img:
        w, h = img.size
        if w == 0 or h == 0:
            raise ImageError(f"{name} is empty ({w}×{h} pixels)")
        if max_pixels is not None and w * h > max_pixels:
            raise ImageError(f"{name} is {w}×{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                             f"{max_pixels / 1e6:.1f} megapixels. Please resize it first.")
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated: the first frame
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
    if min(rgb.size) < min_side:
        raise ImageError(f"{name} is {rgb.width}×{rgb.height} pixels; at least {min_side}×{min_side} are needed")
    return rgb


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB → float tensor (3, H, W) in [0, 1]."""
    return to_uint8(img).float().div_(255)


def to_uint8(img: Image.Image) -> torch.Tensor:
    """PIL RGB → uint8 tensor (3, H, W)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """An image tensor as float in [0, 1]: uint8 is divided by 255, float is returned as it is."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


# Rows converted at a time by `quantize`: its float temporaries stay a few megabytes.
QUANTIZE_ELEMENTS = 1 << 20


def quantize(x: torch.Tensor) -> torch.Tensor:
    """An image tensor (..., H, W) in [0, 1] → uint8 (rounded, not truncated; uint8 is returned as
    it is). Converted a band of rows at a time: a 4-megapixel image would be a 48 MB float copy."""
    if x.dtype == torch.uint8:
        return x
    x = x.detach()
    out = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    rows = max(1, QUANTIZE_ELEMENTS // max(1, x[..., :1, :].numel()))
    for r in range(0, x.shape[-2], rows):
        out[..., r:r + rows, :] = x[..., r:r + rows, :].clamp(0, 1).mul_(255).round_()
    return out


def to_pil(x: torch.Tensor) -> Image.Image:
    """Image tensor (3, H, W), float in [0, 1] (rounded, not truncated) or uint8 → PIL RGB."""
    return Image.fromarray(quantize(x).permute(1, 2, 0).cpu().numpy(), "RGB")

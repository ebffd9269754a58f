"""Every kind of bad or unusual upload the app must survive, made with PIL in tmp_path."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from restoration.data.images import ImageError, image_size, open_image, quantize, to_float, to_pil, to_tensor, to_uint8


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width × height pixels but holds almost no data: a decompression bomb
    as far as the header goes. Decoding it would need width × height × 3 bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def noise(size=(40, 30), mode="RGB"):
    return Image.effect_noise(size, 60).convert(mode)


@pytest.mark.parametrize("content, message", [
    (b"this is not an image", "not an image"),
    (b"", "not an image"),
    (b"GIF89a" + b"\x00" * 3, "not an image|could not be decoded"),
])
def test_files_that_are_not_images(tmp_path, content, message):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        open_image(path)
    with pytest.raises(ImageError, match=message):  # the header alone says so too, in the same words
        image_size(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_truncated_images(tmp_path, fmt):
    data = io.BytesIO()
    noise((64, 64)).save(data, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt|not an image"):
        open_image(path)


def test_empty_and_tiny_images(tmp_path):
    zero = tmp_path / "zero.png"
    zero.write_bytes(png_header_only(0, 0))
    with pytest.raises(ImageError):
        open_image(zero)
    with pytest.raises(ImageError, match="1×1 pixels; at least 2×2"):
        open_image(save(tmp_path, "one.png", Image.new("RGB", (1, 1))))
    assert open_image(save(tmp_path, "two.png", Image.new("RGB", (2, 2)))).size == (2, 2)


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(100_000, 100_000))
    # Decoding must never start: make it fail loudly if it does.
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("the bomb was decoded"))
    with pytest.raises(ImageError, match="too large"):
        open_image(bomb, max_pixels=1 << 22)
    medium = tmp_path / "medium.png"  # under Pillow's own bomb limit: our limit must catch it
    medium.write_bytes(png_header_only(5000, 5000))
    with pytest.raises(ImageError, match="5000×5000 = 25.0 megapixels; the limit is 4.2"):
        open_image(medium, max_pixels=1 << 22)


def test_sixteen_bit_grayscale_keeps_its_range(tmp_path):
    a = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    img = open_image(save(tmp_path, "16.png", Image.fromarray(a)))
    assert img.mode == "RGB" and img.getpixel((1, 0)) == (255, 255, 255) and img.getpixel((0, 1))[0] == 128


@pytest.mark.parametrize("mode, colour, expected", [
    ("P", None, None),
    ("L", 128, (128, 128, 128)),
    ("LA", (100, 0), (255, 255, 255)),  # fully transparent → the white background
    ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
    ("RGBA", (255, 0, 0, 0), (255, 255, 255)),
    ("1", 1, (255, 255, 255)),
])
def test_modes_become_8_bit_rgb(tmp_path, mode, colour, expected):
    img = noise(mode="RGB").convert("P") if mode == "P" else Image.new(mode, (8, 6), colour)
    out = open_image(save(tmp_path, "m.png", img))
    assert out.mode == "RGB" and out.size == img.size
    if expected is not None:
        assert out.getpixel((0, 0)) == expected


def test_palette_with_transparency(tmp_path):
    img = Image.new("RGBA", (8, 8), (0, 0, 255, 0)).convert("P")
    assert open_image(save(tmp_path, "p.png", img)).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    out = open_image(save(tmp_path, "c.jpg", Image.new("CMYK", (16, 8), (0, 255, 255, 0)), quality=95))
    r, g, b = out.getpixel((4, 4))
    assert out.mode == "RGB" and r > 240 and g < 15 and b < 15  # CMYK (0, 1, 1, 0) is red


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # a blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = open_image(save(tmp_path, "rotated.jpg", img, exif=exif, quality=95))
    assert out.size == (20, 40)
    assert out.getpixel((10, 2))[2] > 200  # the left band is now at the top


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_give_their_first_frame(tmp_path, fmt):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], **({"lossless": True} if fmt == "WEBP" else {}))
    assert open_image(path).getpixel((4, 4)) == (255, 0, 0)


def test_bytes_and_file_objects(tmp_path):
    data = io.BytesIO()
    noise().save(data, "PNG")
    assert open_image(data.getvalue()).size == (40, 30)
    data.seek(0)
    assert open_image(data).size == (40, 30)
    with pytest.raises(ImageError, match="does not exist"):
        open_image(tmp_path / "missing.png")


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it finds
def test_corrupt_files_always_give_image_error():
    """Random damage to real files: Pillow raises many kinds of exceptions (struct.error,
    IndexError, EOFError, ...); every one must come out as an ImageError for the user."""
    rng = np.random.default_rng(0)
    sources = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF"):
        data = io.BytesIO()
        frames = [noise((24, 20)), noise((24, 20))]
        frames[0].save(data, fmt, **({"save_all": True, "append_images": frames[1:]} if fmt == "GIF" else {}))
        sources.append(data.getvalue())
    for source in sources:
        for _ in range(60):
            damaged = bytearray(source)
            for i in rng.integers(0, len(damaged), rng.integers(1, 8)):
                damaged[i] = rng.integers(0, 256)
            if rng.random() < 0.3:
                damaged = damaged[: rng.integers(1, len(damaged))]
            try:
                open_image(bytes(damaged))
            except ImageError:
                pass


def test_tensor_round_trip_is_exact():
    img = noise()
    assert np.array_equal(np.asarray(to_pil(to_tensor(img))), np.asarray(img))


def test_quantize_rounds_clamps_and_works_in_bands(monkeypatch):
    import restoration.data.images as images

    x = torch.tensor([[[-0.2, 0.0, 0.51 / 255, 0.49 / 255, 1.0, 1.7, 128.4 / 255]]]).expand(3, 5, 7).contiguous()
    expected = torch.tensor([0, 0, 1, 0, 255, 255, 128], dtype=torch.uint8).expand(3, 5, 7)
    assert torch.equal(quantize(x), expected)
    monkeypatch.setattr(images, "QUANTIZE_ELEMENTS", 3 * 7 * 2)  # two rows at a time, a short last band
    assert torch.equal(quantize(x), expected) and x.min() < 0  # the input is left as it was
    u = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)
    assert quantize(u) is u and torch.equal(to_float(u), u.float() / 255) and torch.equal(to_uint8(to_pil(u)), u)


def test_image_size_reads_the_header_only(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    noise((40, 30)).save(path)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    assert image_size(path) == (40, 30)

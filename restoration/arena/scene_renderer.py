"""A scene and how it is rendered (restoration/arena/scenes.py says what a scene is for): one cut of
a scene image (a crop of a photo, or its centre), degraded, restored by its family's contenders and
bicubic, each picture encoded once as a PNG that gets a fresh nonce every time it is served. The
renderer waits between windows while people need the cores (`hold`, set by the scene pool)."""

import dataclasses
import io
import secrets
import struct
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PIL import Image

from restoration.arena.ratings import ANCHOR
from restoration.arena.scene_crops import crop_boxes, display_zoom
from restoration.data.degrade import prepare, upscale_bicubic
from restoration.data.images import to_float, to_pil, to_uint8
from restoration.data.uploads import open_upload
from restoration.inference.runner import Restorer, restorers_for
from restoration.settings import Settings

YIELD_POLL = 0.02  # seconds between looks at `hold()` while a render waits for a Compare


def center_crop(image: Image.Image, max_side: int) -> Image.Image:
    """The central max_side × max_side (at most) part of an image, with even sides (`center_box`)."""
    box = center_box(image.size, max_side)
    return image if box == (0, 0, *image.size) else image.crop(box)


def center_box(size: tuple[int, int], max_side: int) -> tuple[int, int, int, int]:
    """The central box of at most max_side × max_side pixels, with even sides (the ×2 degradation
    needs them), as (left, top, right, bottom)."""
    w, h = size
    cw, ch = min(w, max_side), min(h, max_side)
    cw, ch = cw - cw % 2, ch - ch % 2
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def crop_text(box: tuple[int, int, int, int] | None) -> str:
    """A crop box as the vote record keeps it: "left top right bottom" (pixels of the image, PIL's
    box), "" for none."""
    return " ".join(map(str, box)) if box else ""


@dataclasses.dataclass
class Scene:
    image_id: str
    degradation: str
    low: Image.Image  # the low-resolution input (half size)
    original: Image.Image
    outputs: dict[str, Image.Image]  # contender name → its restoration
    uses: int = 0
    family: str | None = None  # whose U-Nets were rendered (None: every model's)
    crop: tuple[int, int, int, int] | None = None  # the box of the image it shows (left, top, right, bottom)
    _png: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def key(self) -> tuple:
        """What a judge is not shown twice in a row: the image and the crop of it."""
        return self.image_id, self.crop

    def zoom(self) -> int:
        """The integer zoom the restorations are shown at (`scene_crops.display_zoom`); the
        low-resolution input is shown at twice it, the same scale."""
        return display_zoom(self.original.size)

    def png(self, which: str) -> bytes:
        """A picture of the scene ("low", "original" or a contender's name) as PNG bytes with a
        fresh random nonce in them (`with_nonce`). Each picture is encoded once per scene, not once
        per pair: encoding was most of the CPU a vote cost."""
        if which not in self._png:  # two judges may both encode it first: the same bytes, no harm
            image = self.low if which == "low" else self.original if which == "original" else self.outputs[which]
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=1)
            self._png[which] = buffer.getvalue()
        return with_nonce(self._png[which])


def with_nonce(png: bytes) -> bytes:
    """`png` with a random tEXt chunk after its header: the same picture in new bytes, so the URL
    Gradio serves it under (a hash of the bytes) is new every time and cannot name the model."""
    data = b"nonce\0" + secrets.token_hex(16).encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    header_end = 8 + 25  # the signature, then IHDR (length, type, 13 bytes, CRC)
    return png[:header_end] + chunk + png[header_end:]


class SceneRenderer:
    """Renders scenes: cut a scene image, degrade it, then restore it with every contender."""

    def __init__(self, models: Sequence, image_files: dict[str, Path], settings: Settings, max_side: int = 512,
                 restorers: Mapping[str, Restorer] | None = None):
        self.models = {m.entry.name: m for m in models}
        self.image_files, self.settings, self.max_side = image_files, settings, max_side
        # The app passes its own (the fast path, shared with Compare); otherwise eager ones.
        self.restorers = restorers if restorers is not None else restorers_for(models, settings, fast=False)
        self.hold: Callable[[], bool] = lambda: False  # ScenePool sets it: whether people need the cores now

    def render(self, image_id: str, degradation: str = "lesson", names: Sequence[str] | None = None,
               family: str | None = None, crop: int | None = None) -> Scene:
        """The scene of one image: with `crop` k, its k-th crop (`scene_crops.crop_boxes`, counted
        round if the photo has fewer); without, its central `max_side` square (a thumbnail whole)."""
        s = self.settings
        image = open_upload(self.image_files[image_id], "degrade", s)
        boxes = crop_boxes(image) if crop is not None else []
        box = boxes[crop % len(boxes)] if boxes else center_box(image.size, self.max_side)
        original = image.crop(box)
        low, _, reference = prepare(to_uint8(original), "degrade", degradation)  # 8-bit, as in Compare
        outputs = {}
        for name in names or [ANCHOR, *self.models]:
            if name == ANCHOR:
                out = upscale_bicubic(to_float(low))
            else:
                out = self.restorers[name](low, before_window=self._wait_while_held)
            outputs[name] = to_pil(out)
        scene = Scene(image_id, degradation, to_pil(low), to_pil(reference), outputs, family=family, crop=box)
        for which in ["low", "original", *outputs]:
            scene.png(which)  # encoded here, in the background, rather than in a judge's request
        return scene

    def _wait_while_held(self):
        while self.hold():
            time.sleep(YIELD_POLL)

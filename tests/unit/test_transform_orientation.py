"""Recompressing one image: EXIF orientation, applied without copying frames that need none."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from imgpipe_processor.transform import recompress

MAX_PIXELS = 1_000_000
QUALITY = 50
ORIENTATION = 0x0112
QUADRANTS = ((255, 0, 0), (0, 160, 0), (0, 0, 255), (255, 255, 255))  # TL, TR, BL, BR
# What turns an upright frame into the one a camera stores with each orientation: the inverse
# of the transpose that the orientation asks a reader to apply.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def quadrants(size: tuple[int, int] = (64, 32)) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    for index, colour in enumerate(QUADRANTS):
        left, top = (index % 2) * width // 2, (index // 2) * height // 2
        image.paste(colour, (left, top, left + width // 2, top + height // 2))
    return image


def jpeg(image: Image.Image, orientation: int | None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def quadrant_colours(data: bytes) -> list[tuple[int, ...]]:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        centres = [(width // 4, height // 4), (3 * width // 4, height // 4)]
        centres += [(width // 4, 3 * height // 4), (3 * width // 4, 3 * height // 4)]
        return [tuple(image.getpixel(centre)) for centre in centres]  # type: ignore[arg-type]


def close_to(actual: list[tuple[int, ...]], expected: tuple[tuple[int, ...], ...]) -> bool:
    return all(
        abs(a - e) <= 24
        for pixel, want in zip(actual, expected, strict=True)
        for a, e in zip(pixel, want, strict=True)
    )


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_an_exif_rotated_or_mirrored_jpeg_comes_out_upright(orientation: int) -> None:
    stored = quadrants().transpose(STORED_AS[orientation])

    result = recompress(jpeg(stored, orientation), MAX_PIXELS, QUALITY)

    assert (result.width, result.height) == (64, 32)
    assert close_to(quadrant_colours(result.jpeg), QUADRANTS)
    with Image.open(io.BytesIO(result.jpeg)) as written:
        assert ORIENTATION not in written.getexif()


@pytest.mark.parametrize("orientation", [None, 1])
def test_an_image_without_an_orientation_to_apply_is_neither_transposed_nor_copied(
    monkeypatch: pytest.MonkeyPatch, orientation: int | None
) -> None:
    calls: list[str] = []

    def spy(name: str) -> Callable[..., Any]:
        original = getattr(Image.Image, name)

        def wrapper(self: Image.Image, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(self, *args, **kwargs)

        return wrapper

    for name in ("copy", "transpose"):
        monkeypatch.setattr(Image.Image, name, spy(name))

    result = recompress(jpeg(quadrants(), orientation), MAX_PIXELS, QUALITY)

    assert calls == []
    assert (result.width, result.height) == (64, 32)
    assert close_to(quadrant_colours(result.jpeg), QUADRANTS)

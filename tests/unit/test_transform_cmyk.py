"""Recompressing a CMYK JPEG that carries its ICC profile: converted through that profile."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageCms

from imgpipe_processor import transform
from imgpipe_processor.transform import recompress
from tests.unit.cmyk_profile import cmyk_profile

MAX_PIXELS = 1_000_000
QUALITY = 50


@pytest.fixture(autouse=True)
def no_cached_transforms() -> Iterator[None]:
    transform._cmyk_to_srgb.cache_clear()
    yield
    transform._cmyk_to_srgb.cache_clear()


def cmyk_jpeg(icc: bytes, ink: tuple[int, int, int, int]) -> bytes:
    image = Image.new("CMYK", (32, 32), (0, 0, 0, 0))
    image.paste(ink, (16, 0, 32, 32))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, icc_profile=icc)
    return buffer.getvalue()


def colours(jpeg: bytes) -> tuple[Any, Any, str, Any]:
    with Image.open(io.BytesIO(jpeg)) as image:
        return image.getpixel((4, 16)), image.getpixel((28, 16)), image.mode, image.info


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 8) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def test_a_cmyk_jpeg_is_converted_through_its_profile_to_rgb_without_one() -> None:
    result = recompress(cmyk_jpeg(cmyk_profile(), (0, 255, 255, 0)), MAX_PIXELS, QUALITY)

    paper, ink, mode, info = colours(result.jpeg)
    assert mode == "RGB"
    assert close_to(paper, (255, 255, 255))
    assert close_to(ink, (255, 0, 0))
    assert "icc_profile" not in info


def test_images_sharing_a_profile_share_one_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    icc = cmyk_profile()
    cyan, magenta = cmyk_jpeg(icc, (255, 0, 0, 0)), cmyk_jpeg(icc, (0, 255, 0, 0))
    built: list[object] = []
    build = ImageCms.buildTransform

    def counting(*args: Any, **kwargs: Any) -> ImageCms.ImageCmsTransform:
        built.append(args)
        return build(*args, **kwargs)

    monkeypatch.setattr(ImageCms, "buildTransform", counting)

    first = recompress(cyan, MAX_PIXELS, QUALITY)
    second = recompress(magenta, MAX_PIXELS, QUALITY)

    assert len(built) == 1
    assert close_to(colours(first.jpeg)[1], (0, 255, 255))
    assert close_to(colours(second.jpeg)[1], (255, 0, 255))
    assert recompress(cyan, MAX_PIXELS, QUALITY).jpeg == first.jpeg


def test_a_cmyk_jpeg_whose_profile_is_not_a_cmyk_one_is_rejected_as_corrupt() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

    with pytest.raises(transform.ImageRejected) as rejected:
        recompress(cmyk_jpeg(srgb, (0, 255, 255, 0)), MAX_PIXELS, QUALITY)

    assert rejected.value.reason == "corrupt"

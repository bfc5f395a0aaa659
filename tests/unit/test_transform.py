"""Recompressing one image: decode, normalise, encode a quality-50 JPEG."""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from imgpipe_processor.transform import ImageRejected, Recompressed, recompress

MAX_PIXELS = 1_000_000
QUALITY = 50


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def run(data: bytes, tmp_path: Path, max_pixels: int = MAX_PIXELS) -> tuple[Recompressed, Path]:
    """Recompress `data` and save the JPEG it returns, for Pillow to open."""
    result = recompress(data, max_pixels, QUALITY)
    destination = tmp_path / "image.jpg"
    destination.write_bytes(result.jpeg)
    return result, destination


def two_halves(
    mode: str, left: object, right: object, size: tuple[int, int] = (32, 32)
) -> Image.Image:
    image = Image.new(mode, size, right)  # type: ignore[arg-type]
    image.paste(left, (0, 0, size[0] // 2, size[1]))  # type: ignore[arg-type]
    return image


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 8) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def noise(size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.merge(
        "RGB",
        [
            Image.effect_noise(size, 60),
            Image.linear_gradient("L").resize(size),
            Image.effect_noise(size, 20),
        ],
    )


def rejected(data: bytes, tmp_path: Path, max_pixels: int = MAX_PIXELS) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        run(data, tmp_path, max_pixels)
    return caught.value


# --- output format ----------------------------------------------------------------------------


def test_output_is_a_jpeg_with_the_quantization_tables_of_a_quality_50_encode(
    tmp_path: Path,
) -> None:
    source = noise()
    result, out = run(encode(source, "JPEG", quality=95), tmp_path)

    with Image.open(out) as written:
        assert written.format == "JPEG"
        decoded = Image.open(io.BytesIO(encode(source, "JPEG", quality=95))).convert("RGB")
        with Image.open(io.BytesIO(encode(decoded, "JPEG", quality=50))) as reference:
            assert written.quantization == reference.quantization
    assert (result.width, result.height, result.source_format) == (64, 48, "JPEG")
    assert result.bytes_out == out.stat().st_size


def test_greyscale_jpeg_stays_greyscale_with_quality_50_tables(tmp_path: Path) -> None:
    source = Image.effect_noise((40, 40), 50)
    _, out = run(encode(source, "JPEG", quality=90), tmp_path)

    with Image.open(out) as written:
        reference = Image.open(io.BytesIO(encode(Image.new("L", (8, 8)), "JPEG", quality=50)))
        assert written.mode == "L"
        assert written.quantization == reference.quantization


def test_exif_metadata_is_stripped(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x0110] = "Model X"
    exif[0x0112] = 1
    _, out = run(encode(noise(), "JPEG", exif=exif.tobytes()), tmp_path)

    with Image.open(out) as written:
        assert "exif" not in written.info
        assert dict(written.getexif()) == {}


def test_an_icc_profile_of_an_rgb_input_is_kept(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _, out = run(encode(noise(), "JPEG", icc_profile=icc), tmp_path)

    with Image.open(out) as written:
        assert written.info.get("icc_profile") == icc


def test_an_input_without_icc_profile_gets_none(tmp_path: Path) -> None:
    _, out = run(encode(noise(), "JPEG"), tmp_path)

    with Image.open(out) as written:
        assert "icc_profile" not in written.info


def test_cmyk_jpeg_becomes_rgb_with_the_right_colours(tmp_path: Path) -> None:
    source = two_halves("CMYK", (0, 0, 0, 0), (0, 255, 255, 0))

    result, out = run(encode(source, "JPEG"), tmp_path)

    assert result.source_format == "JPEG"
    with Image.open(out) as written:
        assert written.mode == "RGB"
        assert close_to(written.getpixel((4, 16)), (255, 255, 255))
        assert close_to(written.getpixel((28, 16)), (255, 0, 0))


def test_the_result_is_jpeg_bytes_whose_length_is_bytes_out() -> None:
    result = recompress(encode(noise(), "JPEG"), MAX_PIXELS, QUALITY)

    assert result.jpeg[:2] == b"\xff\xd8"
    assert result.jpeg[-2:] == b"\xff\xd9"
    assert result.bytes_out == len(result.jpeg)


# --- rejections -------------------------------------------------------------------------------


def test_more_pixels_than_max_pixels_is_rejected_as_a_bomb(tmp_path: Path) -> None:
    error = rejected(encode(noise((100, 100)), "JPEG"), tmp_path, max_pixels=9_999)

    assert error.reason == "bomb"
    assert error.detail == "100x100 is more than 9999 pixels"


def test_exactly_max_pixels_is_accepted(tmp_path: Path) -> None:
    result, _ = run(encode(noise((100, 100)), "JPEG"), tmp_path, max_pixels=10_000)

    assert (result.width, result.height) == (100, 100)


def test_a_jpeg_header_claiming_65535_by_65535_pixels_is_rejected_as_a_bomb(
    tmp_path: Path,
) -> None:
    data = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = b"\xff\xff\xff\xff"  # height and width

    error = rejected(bytes(data), tmp_path)

    assert error.reason == "bomb"


def test_a_truncated_jpeg_is_rejected_as_corrupt(tmp_path: Path) -> None:
    data = encode(noise(), "JPEG")

    error = rejected(data[: len(data) // 2], tmp_path)

    assert error.reason == "corrupt"
    assert "truncated" in error.detail


def test_a_jpeg_cut_inside_its_header_is_rejected_as_corrupt(tmp_path: Path) -> None:
    data = encode(noise(), "JPEG")

    assert rejected(data[:30], tmp_path).reason == "corrupt"


def test_html_is_rejected_as_not_an_image(tmp_path: Path) -> None:
    error = rejected(b"<!doctype html><html><body>Not found</body></html>", tmp_path)

    assert error.reason == "not_an_image"


def test_empty_bytes_are_rejected_as_not_an_image(tmp_path: Path) -> None:
    assert rejected(b"", tmp_path).reason == "not_an_image"


def test_a_format_outside_the_allowed_list_is_rejected_as_not_an_image(tmp_path: Path) -> None:
    assert rejected(encode(noise(), "PPM"), tmp_path).reason == "not_an_image"


def test_a_png_header_claiming_huge_dimensions_is_rejected_as_a_bomb(tmp_path: Path) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")

    assert rejected(png, tmp_path).reason == "bomb"


# --- other source formats ---------------------------------------------------------------------


def test_transparent_rgba_pixels_become_white(tmp_path: Path) -> None:
    source = two_halves("RGBA", (0, 0, 255, 0), (255, 0, 0, 255))

    result, out = run(encode(source, "PNG"), tmp_path)

    assert result.source_format == "PNG"
    with Image.open(out) as written:
        assert written.mode == "RGB"
        assert close_to(written.getpixel((4, 16)), (255, 255, 255))
        assert close_to(written.getpixel((28, 16)), (255, 0, 0))


def test_half_transparent_pixels_are_blended_on_white(tmp_path: Path) -> None:
    source = two_halves("RGBA", (255, 0, 0, 128), (0, 0, 255, 64))

    _, out = run(encode(source, "PNG"), tmp_path)

    with Image.open(out) as written:
        assert close_to(written.getpixel((4, 16)), (255, 127, 127))
        assert close_to(written.getpixel((28, 16)), (191, 191, 255))


def test_a_palette_png_with_a_transparent_index_gets_a_white_background(tmp_path: Path) -> None:
    source = Image.new("P", (32, 32), 1)
    source.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    source.paste(0, (0, 0, 16, 32))

    _, out = run(encode(source, "PNG", transparency=0), tmp_path)

    with Image.open(out) as written:
        assert written.mode == "RGB"
        assert close_to(written.getpixel((4, 16)), (255, 255, 255))
        assert close_to(written.getpixel((28, 16)), (255, 0, 0))


@pytest.mark.parametrize(("sample", "grey"), [(25_600, 100), (65_535, 255), (0, 0)])
def test_a_16_bit_greyscale_png_is_scaled_to_8_bits(tmp_path: Path, sample: int, grey: int) -> None:
    source = Image.new("I;16", (16, 16))
    source.putdata([sample] * 256)

    _, out = run(encode(source, "PNG"), tmp_path)

    with Image.open(out) as written:
        assert written.mode == "L"
        assert written.getextrema() == (grey, grey)


def test_an_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    red = Image.new("RGB", (32, 32), (255, 0, 0))
    blue = Image.new("RGB", (32, 32), (0, 0, 255))

    result, out = run(encode(red, "GIF", save_all=True, append_images=[blue]), tmp_path)

    assert result.source_format == "GIF"
    with Image.open(out) as written:
        assert close_to(written.getpixel((16, 16)), (255, 0, 0))


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "PNG"])
def test_a_supported_format_is_recompressed_to_jpeg(tmp_path: Path, fmt: str) -> None:
    source = two_halves("RGB", (0, 200, 0), (200, 0, 200), size=(48, 32))

    result, out = run(encode(source, fmt), tmp_path)

    assert (result.width, result.height, result.source_format) == (48, 32, fmt)
    with Image.open(out) as written:
        assert written.format == "JPEG"
        assert close_to(written.getpixel((4, 16)), (0, 200, 0))
        assert close_to(written.getpixel((44, 16)), (200, 0, 200))


def test_png_exif_is_stripped_and_its_icc_profile_kept(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"

    _, out = run(encode(noise(), "PNG", icc_profile=icc, exif=exif), tmp_path)

    with Image.open(out) as written:
        assert written.info.get("icc_profile") == icc
        assert dict(written.getexif()) == {}


def test_a_rejection_survives_the_trip_through_the_process_pool() -> None:
    rejected = ImageRejected("bomb", "too many pixels")
    copy = pickle.loads(pickle.dumps(rejected))
    assert (copy.reason, copy.detail, str(copy)) == ("bomb", "too many pixels", "too many pixels")

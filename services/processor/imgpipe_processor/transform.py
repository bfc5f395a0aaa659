"""Decode, normalise and re-encode one image. Runs in worker processes, never on the loop."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from imgpipe_processor.errors import ProcessorError

# Decoders we accept; Pillow sniffs the format from the bytes, never from headers or names.
# Camera MPO files (a JPEG with extra frames) open through the JPEG decoder: Pillow registers
# no separate "MPO" opener, and naming one here would raise KeyError for every other format.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class ImageRejected(ProcessorError):
    """The bytes are not an image we can (or may) decode; `reason` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        # Both in args: the exception crosses the process pool by pickle, which rebuilds it
        # from args; a mismatch breaks the whole pool for every job in flight.
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class Recompressed:
    width: int
    height: int
    source_format: str
    jpeg: bytes

    @property
    def bytes_out(self) -> int:
        return len(self.jpeg)


def configure_worker(max_pixels: int) -> None:
    """Process-pool initializer: make Pillow's own bomb guard agree with ours."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def recompress(data: bytes, max_pixels: int, quality: int) -> Recompressed:
    """Re-encode `data` as a JPEG; raise ImageRejected.

    The JPEG comes back as bytes: storing it is the event loop's job (the file store), so a
    worker process makes no I/O of its own."""
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", "the content is not a supported image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("bomb", "the image has too many pixels to decode") from None
    except OSError as exc:
        raise ImageRejected("corrupt", f"the image header cannot be read: {exc}") from None
    with image:
        source_format = image.format or "unknown"
        if image.width * image.height > max_pixels:
            raise ImageRejected(
                "bomb", f"{image.width}x{image.height} is more than {max_pixels} pixels"
            )
        try:
            image.load()
            output, icc = _normalise(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected("bomb", "the image has too many pixels to decode") from None
        except (OSError, SyntaxError, ValueError, ImageCms.PyCMSError) as exc:
            # PyCMSError: an embedded ICC profile that does not fit the image's colours.
            raise ImageRejected("corrupt", f"the image is truncated or damaged: {exc}") from None
        encoded = io.BytesIO()
        # An empty comment: Pillow would otherwise copy the source's JPEG comment (metadata).
        output.save(encoded, "JPEG", quality=quality, icc_profile=icc, comment=b"")
        return Recompressed(output.width, output.height, source_format, encoded.getvalue())


def _normalise(image: Image.Image) -> tuple[Image.Image, bytes | None]:
    """Upright, opaque, 8-bit RGB or greyscale; returns the ICC profile still valid for it."""
    icc = image.info.get("icc_profile")
    # In place: otherwise an image without an orientation to apply (nearly all of them) costs a
    # copy of the whole frame, about 5% of a recompress.
    ImageOps.exif_transpose(image, in_place=True)
    mode = image.mode
    if mode in ("RGB", "L"):
        return image, icc
    if mode == "CMYK":
        if icc:
            converted = ImageCms.applyTransform(image, _cmyk_to_srgb(icc))
            if converted is not None:
                return converted, None
        return image.convert("RGB"), None
    if mode.startswith("I;16") or mode in ("I", "F"):
        return image.convert("I").point(lambda v: v / 256).convert("L"), None
    if mode == "1":
        return image.convert("L"), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        # Neither an RGBA frame converted to itself nor its alpha band taken out: each would be
        # a copy that paste does not need, as it reads the alpha of an RGBA mask itself.
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba)
        return background, icc if mode in ("RGBA", "RGBa") else None
    return image.convert("RGB"), None


# Building a transform costs about 25 ms, a quarter of recompressing a 1.4 MP CMYK JPEG, and the
# CMYK images of one catalogue tend to share their press profile. Few kept: a profile can be
# megabytes.
@lru_cache(maxsize=4)
def _cmyk_to_srgb(icc: bytes) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "CMYK", "RGB")

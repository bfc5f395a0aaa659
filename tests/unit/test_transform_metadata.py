"""Recompressing strips the source's metadata: no JPEG comment and no EXIF come through."""

from __future__ import annotations

import io

from PIL import Image

from imgpipe_processor.transform import recompress


def test_a_jpeg_comment_in_the_source_is_not_copied_to_the_output() -> None:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "private description"  # ImageDescription
    Image.new("RGB", (40, 30), (200, 30, 30)).save(
        buffer, "JPEG", comment=b"made by someone's private camera", exif=exif
    )

    result = recompress(buffer.getvalue(), 1_000_000, 50)

    with Image.open(io.BytesIO(result.jpeg)) as output:
        assert "comment" not in output.info
        assert "exif" not in output.info
        assert output.size == (40, 30)

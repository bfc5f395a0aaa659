"""A small CMYK ICC profile for tests (none ships with Pillow or Debian's base system).

ICC v2, output class, CMYK to Lab through a 2-point lut8: each corner of the CMYK cube maps to
the sRGB colour of naive ink subtraction, (1 - C)(1 - K) and so on, so the expected colours of a
conversion are easy to state."""

from __future__ import annotations

import itertools
import struct

from PIL import Image, ImageCms

D50 = (0.9642, 1.0, 0.8249)


def _s15fixed16(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _lab_corners() -> bytes:
    corners = list(itertools.product((0, 1), repeat=4))  # C varies slowest, as lut8 wants
    rgb = Image.new("RGB", (len(corners), 1))
    for x, (*inks, black) in enumerate(corners):
        rgb.putpixel((x, 0), tuple(round(255 * (1 - ink) * (1 - black)) for ink in inks))
    to_lab = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )
    lab = ImageCms.applyTransform(rgb, to_lab)
    assert lab is not None
    # getpixel gives a* and b* offset by 128, the encoding of a lut8 to a Lab PCS (tobytes
    # would give them signed).
    return b"".join(bytes(lab.getpixel((x, 0))) for x in range(len(corners)))  # type: ignore[arg-type]


def cmyk_profile() -> bytes:
    identity = bytes(range(256))
    lut8 = (
        b"mft1\0\0\0\0"
        + bytes([4, 3, 2, 0])  # input channels, output channels, grid points, padding
        + _s15fixed16(1, 0, 0, 0, 1, 0, 0, 0, 1)
        + identity * 4
        + _lab_corners()
        + identity * 3
    )
    name = b"test CMYK\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(name)) + name + bytes(4 + 4 + 3 + 67)
    white = b"XYZ \0\0\0\0" + _s15fixed16(*D50)
    tags = [(b"desc", desc), (b"wtpt", white), (b"A2B0", lut8)]
    table, body = struct.pack(">I", len(tags)), b""
    start = 128 + 4 + 12 * len(tags)
    for signature, data in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", start + len(body))
        + b"lcms\x02\x10\0\0prtrCMYKLab "
        + bytes(12)  # date
        + b"acsp"
        + bytes(24)  # platform, flags, manufacturer, model, attributes
        + bytes(4)  # rendering intent
        + _s15fixed16(*D50)
        + bytes(48)  # creator, reserved
    )
    assert len(header) == 128
    return header + table + body

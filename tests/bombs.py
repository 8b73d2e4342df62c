"""Files that cost whoever decodes them blindly far more than they weigh: shared by the tests and the
benchmarks, which send the same ones."""

import struct
import zlib
from pathlib import Path


def giant_png(path: Path, side: int) -> None:
    """A valid black-and-white PNG of side x side pixels, a few kilobytes on disk, made without ever
    holding the picture: the kind of file that costs gigabytes to whoever decodes it blindly."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + b"\xff" * (side // 8 + 1)  # filter byte, then a white row at 1 bit per pixel
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.compress(row * (side % 1000))
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels + packer.flush())
                     + chunk(b"IEND", b""))

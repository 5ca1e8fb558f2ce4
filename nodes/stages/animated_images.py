"""Streaming GIF and APNG writers, and the workflow metadata of image containers.

Pillow's own animated GIF/APNG savers keep every frame in memory until the
file is written. These writers instead compress one frame at a time with
Pillow's single-image encoders and splice the compressed data into the
animation container, so memory stays at one frame whatever the loop's length.
Container layouts follow the GIF89a specification and the APNG specification
(Mozilla wiki, "APNG Specification"); the metadata places are those ComfyUI's
frontend reads (tEXt chunks in PNG, "key:json" EXIF strings in WebP, as core
SaveImage and SaveAnimatedWEBP write them).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from fractions import Fraction
from typing import Any, BinaryIO, Iterable, Iterator, Mapping, Optional

import numpy as np

# ---------------------------------------------------------------- metadata


def metadata_texts(metadata: Optional[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``[(key, JSON text)]`` in the given order (prompt first, then the workflow)."""
    return [(key, json.dumps(value)) for key, value in (metadata or {}).items()]


def png_text_info(metadata: Optional[Mapping[str, Any]]):
    """A Pillow ``PngInfo`` with one tEXt chunk per metadata key, or None."""
    from PIL.PngImagePlugin import PngInfo

    texts = metadata_texts(metadata)
    if not texts:
        return None
    info = PngInfo()
    for key, text in texts:
        info.add_text(key, text)  # json.dumps is ASCII, so tEXt (not iTXt)
    return info


def webp_exif(metadata: Optional[Mapping[str, Any]]) -> bytes:
    """EXIF as core SaveAnimatedWEBP writes it: prompt in tag 0x0110, other keys from 0x010F down."""
    from PIL import Image

    exif = Image.Exif()
    tag = 0x010F
    for key, text in metadata_texts(metadata):
        if key == "prompt":
            exif[0x0110] = f"prompt:{text}"
        else:
            exif[tag] = f"{key}:{text}"
            tag -= 1
    return exif.tobytes() if len(exif) else b""


def append_webp_exif(path: str, exif: bytes, width: int, height: int) -> None:
    """Add an EXIF chunk to a finished WebP file of ``width`` x ``height``.

    RIFF layout per Google's "WebP Container Specification": the chunk goes at
    the end and the VP8X header's flags get the EXIF bit (0x08). The encoder
    writes a simple (VP8/VP8L) file when every frame is the same; that one is
    given a VP8X header first.
    """
    if not exif:
        return
    chunk = b"EXIF" + struct.pack("<I", len(exif)) + exif + (b"\0" if len(exif) % 2 else b"")
    with open(path, "r+b") as file:
        head = file.read(21)
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            raise ValueError(f"{path} is not a WebP file")
        if head[12:16] == b"VP8X":  # animated: patch in place, however long the file
            file.seek(0, io.SEEK_END)
            file.write(chunk)
            riff_size = file.tell() - 8
            file.seek(4)
            file.write(struct.pack("<I", riff_size))
            file.seek(20)
            file.write(bytes([head[20] | 0x08]))
            return
        file.seek(12)
        image = file.read()  # one still frame
        size = struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]
        body = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0]) + size + image + chunk
        file.seek(0)
        file.write(b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body)


# ---------------------------------------------------------------- GIF


def shared_palette(sample: np.ndarray):
    """One 256-colour palette image from a mosaic of RGB uint8 pixels ``[..., 3]``."""
    from PIL import Image

    return Image.fromarray(sample.reshape(-1, sample.shape[-2], 3)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT
    )


def gif_delays_cs(fps: float) -> Iterator[int]:
    """Frame delays in centiseconds whose running sum stays within 1/2 cs of the exact time."""
    frame = 0
    while True:
        yield round(100 * (frame + 1) / fps) - round(100 * frame / fps)
        frame += 1


def _gif_parts(encoded: bytes) -> tuple[bytes, bytes, bytes]:
    """(logical screen descriptor, global colour table, image block) of a one-frame GIF."""
    packed = encoded[10]
    table_end = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    at = table_end
    while encoded[at] == 0x21:  # skip extensions (graphics control, comments)
        at += 2
        while encoded[at]:
            at += encoded[at] + 1
        at += 1
    if encoded[at] != 0x2C or encoded[-1] != 0x3B:
        raise ValueError("unexpected GIF layout from Pillow")
    return encoded[6:13], encoded[13:table_end], encoded[at:-1]


def write_gif(file: BinaryIO, frames: Iterable[np.ndarray], palette, fps: float, loop_count: int) -> None:
    """GIF89a with one global colour table (``palette``) and per-frame delays for ``fps``."""
    from PIL import Image

    delays = gif_delays_cs(fps)
    screen = table = None
    for frame in frames:
        indexed = Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        indexed.save(buffer, format="GIF", optimize=False)
        frame_screen, frame_table, image = _gif_parts(buffer.getvalue())
        if screen is None:
            screen, table = frame_screen, frame_table
            file.write(b"GIF89a" + screen + table)
            if loop_count != 1:  # NETSCAPE2.0: repeats after the first play, 0 = forever
                file.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", max(0, loop_count - 1)) + b"\0")
        elif frame_table != table:
            image = _with_local_table(image, frame_table)
        # graphics control extension: disposal "do not dispose" (1), delay in 1/100 s
        file.write(b"\x21\xf9\x04\x04" + struct.pack("<H", next(delays)) + b"\0\0")
        file.write(image)
    file.write(b"\x3b")


def _with_local_table(image: bytes, table: bytes) -> bytes:
    size_bits = max(0, (len(table) // 3).bit_length() - 2)
    return image[:9] + bytes([0x80 | size_bits]) + table + image[10:]


# ---------------------------------------------------------------- APNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_chunks(encoded: bytes) -> Iterator[tuple[bytes, bytes]]:
    at = 8
    while at < len(encoded):
        (length,) = struct.unpack(">I", encoded[at : at + 4])
        yield encoded[at + 4 : at + 8], encoded[at + 8 : at + 8 + length]
        at += 12 + length


def write_apng(
    file: BinaryIO,
    frames: Iterable[np.ndarray],
    fps: float,
    loop_count: int,
    metadata: Optional[Mapping[str, Any]] = None,
    compress_level: int = 6,
) -> None:
    """APNG, one frame compressed at a time; the frame count is patched in at the end.

    ``file`` must be seekable (the acTL chunk's frame count is known only at the end).
    """
    from PIL import Image

    delay = Fraction(1 / fps).limit_denominator(65535)
    sequence = 0
    count = 0
    actl_at = 0
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG", compress_level=compress_level)
        chunks = list(_png_chunks(buffer.getvalue()))
        height, width = frame.shape[:2]
        if count == 0:
            file.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", dict(chunks)[b"IHDR"]))
            actl_at = file.tell()
            file.write(_png_chunk(b"acTL", struct.pack(">II", 0, loop_count)))
            for key, text in metadata_texts(metadata):
                file.write(_png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1")))
        # fcTL: sequence, size, offset 0,0, delay, dispose none, blend source
        control = struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, delay.numerator, delay.denominator, 0, 0)
        file.write(_png_chunk(b"fcTL", control))
        sequence += 1
        for kind, data in chunks:
            if kind != b"IDAT":
                continue
            if count == 0:
                file.write(_png_chunk(b"IDAT", data))
            else:
                file.write(_png_chunk(b"fdAT", struct.pack(">I", sequence) + data))
                sequence += 1
        count += 1
    file.write(_png_chunk(b"IEND", b""))
    end = file.tell()
    file.seek(actl_at)
    file.write(_png_chunk(b"acTL", struct.pack(">II", count, loop_count)))
    file.seek(end)

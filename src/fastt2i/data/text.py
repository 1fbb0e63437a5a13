"""Caption text: bounded reads, and UTF-8 decoding with a counted fallback (a declared encoding, cp1252, latin-1)."""

from __future__ import annotations

import codecs
import os
from typing import BinaryIO

from fastt2i.data.transforms import BadSample

# cp1252 first: "latin-1" text saved on Windows / by Excel is nearly always cp1252 (curly quotes, euro sign at
# 0x80-0x9f); latin-1 maps every byte, so the chain always ends with a decoded string.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")


def read_bounded(fp: BinaryIO, limit: int, reason: str, name: str = "") -> bytes:
    """Read a stream, never more than `limit` + 1 bytes (a compressed stream is not inflated past the limit).

    Args:
        fp: a binary file or stream.
        limit: the most bytes accepted.
        reason: the skip reason to raise ("too_large" or "caption_too_large").
        name: what is read, for the message.

    Raises:
        BadSample: `reason`, when the stream holds more than `limit` bytes.
    """
    data = fp.read(limit + 1)
    if len(data) > limit:
        raise BadSample(reason, f"{name} is over {limit} bytes")
    return data


def decode_text(data: bytes, encoding: str | None = None) -> tuple[str, str | None]:
    """Bytes -> text: UTF-8 (a BOM stripped; a UTF-16 BOM means UTF-16), else `encoding`, cp1252, latin-1.

    Args:
        data: the raw text.
        encoding: an encoding to try before the built-in fallbacks when the text is not UTF-8.

    Returns:
        (text, the fallback encoding used, or None when the text was UTF-8 or declared by its BOM).
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), None  # the BOM says what it is: nothing was guessed
        except UnicodeDecodeError:
            pass
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    for enc in ((encoding,) if encoding else ()) + FALLBACK_ENCODINGS:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def text_conv(encoding: str | None) -> tuple[str, ...]:
    """The conversion to count for text decoded with a fallback encoding: () or ("caption_<encoding>",)."""
    return (f"caption_{encoding.lower()}",) if encoding else ()


def read_caption_file(path: str | os.PathLike, limit: int,
                      encoding: str | None = None) -> tuple[str | None, tuple[str, ...]]:
    """A caption `.txt` file -> (stripped text or None when the file is missing, conversions applied).

    Args:
        path: the caption file.
        limit: the most bytes accepted (BadSample "caption_too_large" beyond).
        encoding: see `decode_text`.
    """
    try:
        with open(path, "rb") as f:
            data = read_bounded(f, limit, "caption_too_large", str(path))
    except FileNotFoundError:
        return None, ()
    text, enc = decode_text(data, encoding)
    return text.strip(), text_conv(enc)

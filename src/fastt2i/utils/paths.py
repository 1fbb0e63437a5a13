"""Output paths checked before any work starts (one-line ConfigError, not a traceback after minutes of sampling),
and deterministic, collision-free file names for per-prompt images."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Iterable

from fastt2i.errors import ConfigError

# Formats that save an RGB image; only those this Pillow build can write are offered (WebP/AVIF need their codecs).
_RGB_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
                ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".tga": "TGA", ".avif": "AVIF"}


def image_extensions() -> tuple[str, ...]:
    """The lower-case extensions an RGB image grid can be saved as with this Pillow build (.png, .jpg, .webp, ...)."""
    from PIL import Image

    Image.init()
    return tuple(ext for ext, fmt in _RGB_FORMATS.items() if fmt in Image.SAVE)


def check_output_file(path: str | os.PathLike, *, flag: str = "--output",
                      extensions: Iterable[str] | None = None) -> Path:
    """Refuse, before any work, an output file that cannot be written; create and change nothing.

    Refused (ConfigError naming `flag`): an existing directory, an extension outside `extensions` (default: the image
    formats Pillow can write, `image_extensions()`), an existing file that cannot be opened for writing, and a path
    whose nearest existing ancestor is a file or a directory where no file can be created (no permission, read-only
    file system). Missing parent directories are fine: the writer creates them.

    Args:
        path: the output file.
        flag: the option it came from, for the message (e.g. "-o").
        extensions: allowed lower-case extensions with the dot, e.g. [".gif"].
    Returns:
        The path (user-expanded).
    """
    p = _as_path(path, flag)
    if p.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; give a file name such as {p / 'grid.png'}")
    allowed = tuple(e.lower() for e in extensions) if extensions is not None else image_extensions()
    if p.suffix.lower() not in allowed:
        got = f"'{p.suffix}'" if p.suffix else "none"
        raise ConfigError(f"{flag} {path}: unsupported image extension ({got}); use one of {', '.join(allowed)}")
    if p.is_file():
        try:
            with open(p, "ab"):  # opens for writing without truncating or touching the contents
                pass
        except OSError as e:
            raise ConfigError(f"{flag} {path}: cannot write to this file ({e.strerror or e})") from None
    elif not p.exists():  # (other existing things, e.g. /dev/null, are left to the writer)
        _check_creatable(p, flag, path)
    return p


def check_output_dir(path: str | os.PathLike, *, flag: str = "--output-dir") -> Path:
    """Refuse, before any work, an output directory that is a file, lies under a file, or cannot be written to.

    A missing directory is fine when its nearest existing ancestor is a writable directory (the writer creates it).
    Nothing is created or changed.

    Args:
        path: the output directory.
        flag: the option it came from, for the message (e.g. "--individual").
    Returns:
        The path (user-expanded).
    """
    p = _as_path(path, flag)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {path} is not a directory (it is a file)")
    _check_creatable(p, flag, path)
    return p


def _as_path(path: str | os.PathLike, flag: str) -> Path:
    if not str(path).strip():
        raise ConfigError(f"{flag} is empty")
    return Path(path).expanduser()


def _check_creatable(p: Path, flag: str, shown: str | os.PathLike) -> None:
    """The nearest existing ancestor of `p` (p itself when it is a directory) must be a directory we can write in."""
    base = p if p.is_dir() else p.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"{flag} {shown}: {base} is not a directory (it is a file)")
    try:  # the only reliable test (root ignores modes; read-only mounts): create and remove a probe file
        fd, probe = tempfile.mkstemp(prefix=".fastt2i-write-check-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{flag} {shown}: cannot write in {base} ({e.strerror or e})") from None


def slugify(text: str, max_len: int = 40) -> str:
    """Lower-case ASCII letters and digits of `text` joined by '-' (accents stripped: 'Café!' -> 'cafe'); may be ''."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_len].strip("-")


def prompt_file_stem(index: int, prompt: str, width: int = 3) -> str:
    """``INDEX-SLUG-HASH``: the zero-padded index, `slugify(prompt)` and the first 8 hex digits of the SHA-256 of the
    exact prompt (UTF-8), e.g. ``003-red-heart-1a2b3c4d``; with an empty slug (emoji, CJK) ``003-1a2b3c4d``.

    Deterministic, readable, and unique per (index, prompt): prompts differing only in case, punctuation or
    non-ASCII characters get different hashes.
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]
    slug = slugify(prompt)
    return f"{index:0{width}d}-{slug + '-' if slug else ''}{digest}"

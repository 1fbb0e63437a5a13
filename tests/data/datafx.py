"""Builders of tiny datasets in every format, with the odd and corrupt files the readers must survive."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastt2i.data import write_shards

N_GOOD = 12  # plain RGB images with captions


def rgb_image(i: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def png_bytes(im: Image.Image, **kw) -> bytes:
    bio = io.BytesIO()
    im.save(bio, format=kw.pop("format", "PNG"), **kw)
    return bio.getvalue()


def odd_files() -> dict[str, tuple[bytes, str | None]]:
    """name -> (encoded file, caption or None for a missing caption): one per odd case."""
    jpg = png_bytes(rgb_image(100, (64, 48)), format="JPEG", quality=90)
    gray = Image.fromarray(np.full((32, 32), 77, np.uint8), "L")
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 0, 0))
    i16 = Image.fromarray(np.full((32, 32), 65535, np.uint16))  # white in 16-bit
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent -> white
    pal = rgb_image(5, (32, 32)).convert("P", palette=Image.ADAPTIVE, colors=16)
    frames = [Image.new("RGB", (32, 32), c) for c in ((0, 0, 255), (0, 255, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return {
        "truncated.jpg": (jpg[: len(jpg) // 2], "a truncated jpeg"),
        "notimage.png": (b"this is plain text, not a png\n" * 3, "a text file"),
        "gray.png": (png_bytes(gray), "a gray square"),
        "cmyk.jpg": (png_bytes(cmyk, format="JPEG"), "a cmyk square"),
        "deep16.png": (png_bytes(i16), "a sixteen bit square"),
        "alpha.png": (png_bytes(rgba), "a transparent square"),
        "palette.png": (png_bytes(pal), "a palette square"),
        "anim.gif": (gif.getvalue(), "an animated square"),
        "nocaption.png": (png_bytes(rgb_image(7)), None),
    }


EXPECTED_SKIPS = {"truncated": 1, "unreadable": 1, "missing_caption": 1}
EXPECTED_CONV = {"grayscale": 2, "cmyk": 1, "16bit": 1, "alpha": 1, "palette": 2, "animated": 1}
# gray.png and deep16.png are grayscale; anim.gif is palette + animated; palette.png is palette
N_USABLE = N_GOOD + 6


def good_files() -> dict[str, tuple[bytes, str]]:
    return {f"img{i:03d}.png": (png_bytes(rgb_image(i)), f"caption number {i}") for i in range(N_GOOD)}


def write_tree(root: Path, files: dict[str, tuple[bytes, str | None]], sub: str = "") -> list[tuple[str, str | None]]:
    rows = []
    for i, (name, (data, cap)) in enumerate(sorted(files.items())):
        rel = f"{sub}{name}" if i % 2 else name  # half in a subfolder: recursion
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if cap is not None:
            p.with_suffix(".txt").write_text(cap)
        rows.append((rel, cap))
    return rows


def manifest_rows(tmp_path: Path) -> tuple[Path, list[dict]]:
    root = tmp_path / "man"
    rows = write_tree(root, {**good_files(), **odd_files()}, sub="sub/")
    return root, [{"file_name": r, "text": c} for r, c in rows]


def make_shards(out: Path, n_shards: int = 4, per_shard: int = 5, odd: bool = True) -> list[Path]:
    """n_shards * per_shard good records (key f"s{i:03d}"), plus the odd files as raw records in the last shard."""
    samples = [{"key": f"s{i:03d}", "image": rgb_image(i), "caption": f"caption number {i}"}
               for i in range(n_shards * per_shard)]
    paths = write_shards(samples, out, samples_per_shard=per_shard, prefix="part")
    if odd:
        import tarfile

        with tarfile.open(out / "part-odd.tar", "w") as tf:
            for name, (data, cap) in sorted(odd_files().items()):
                stem, ext = name.split(".")
                ext = {"gif": "png", "jpg": "jpg"}.get(ext, ext)  # shards carry jpg|png|webp
                for mname, payload in [(f"{stem}.{ext}", data)] + ([(f"{stem}.txt", cap.encode())] if cap else []):
                    ti = tarfile.TarInfo(mname)
                    ti.size = len(payload)
                    tf.addfile(ti, io.BytesIO(payload))
        paths.append(out / "part-odd.tar")
    return paths


def make_npz(path: Path, n: int = 20, with_hex: bool = True) -> Path:
    rng = np.random.default_rng(0)
    extra = {"styles": np.array(["google", "twitter"] * (n // 2)), "hexcodes": np.array([f"1F{i // 2:03X}" for i in range(n)])}
    np.savez_compressed(path, images=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
                        captions=np.array([f"emoji {i}, smileys, google style" for i in range(n)]),
                        names=np.array([f"name {i}" for i in range(n)]), **(extra if with_hex else {}))
    return path




def huge_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR is patched to declare width x height (CRC fixed): a decompression-bomb header."""
    import struct
    import zlib

    data = bytearray(png_bytes(Image.new("RGB", (1, 1), (9, 9, 9))))
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature(8) + length(4) + type(4)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over chunk type + 13 data bytes
    return bytes(data)


def raw_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    """A tar holding exactly `members` (name -> payload), in order; mode "w:gz" for a gzip-compressed one."""
    import tarfile

    with tarfile.open(path, mode) as tf:
        for name, payload in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    return path

"""MemoryImages: a map-style dataset decoded once into one uint8 tensor [N,R,R,3], served by gathering rows of it."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from fastt2i.data.stats import CONV, SKIP, DataStats
from fastt2i.data.transforms import flip_decisions, str_seed, uint8_to_float_table
from fastt2i.errors import DataError

FLOAT_OF_UINT8 = uint8_to_float_table()  # float32 [256]: what the streaming path's to_tensor makes of each level
LUT_CHUNK = 1 << 22  # elements per chunk of a GPU table look-up (its int64 index takes 8 bytes an element)


def _arith(y: np.ndarray) -> np.ndarray:
    out = y.astype(np.float32)
    out /= np.float32(127.5)
    out -= np.float32(1.0)
    return out


# to_tensor's arithmetic (/127.5, -1 in float32) redone in NumPy, used when it gives the table for every level (it does
# wherever both round IEEE float32 correctly); else the table itself (a gather, slower)
_ARITH_EXACT = np.array_equal(_arith(np.arange(256, dtype=np.uint8)), FLOAT_OF_UINT8)


def _torch_arith(x: torch.Tensor) -> torch.Tensor:
    """uint8 [...] -> float32 [...] (contiguous) by `transforms.to_tensor`'s arithmetic, on x's device."""
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    out.copy_(x)
    return out.div_(127.5).sub_(1.0)  # (a GPU may divide by a scalar as a multiply by its reciprocal: checked once)


def _to_float(y: np.ndarray) -> np.ndarray:
    """uint8 array -> float32 in [-1,1], value for value equal to `transforms.to_tensor`."""
    return _arith(y) if _ARITH_EXACT else np.take(FLOAT_OF_UINT8, y)


class MemoryImages:
    """Every sample of a map-style dataset, decoded, converted, resized and cropped once, held as uint8.

    A batch is a gather of rows, an optional left-right mirror of some of them and the uint8 -> [-1,1] float
    conversion of `transforms.to_tensor`, so it is bit-identical to decoding the same samples one by one. The images
    stay channels-last, as decoded (and as an emoji64 `.npz` stores them, so its array is used without a copy).

    Args:
        images: uint8 [M,R,R,3]; M >= N when `rows` picks the samples out of a larger array (an npz split).
        rows: int64 [N], the row of `images` holding sample i; None when sample i is row i.
        keys: [N] sample keys (as `ds.keys`).
        captions: [N] the caption each sample is served with ("" for a bad sample, never served).
        skip: [N] skip reason of a bad sample ("truncated", "missing_caption", ...), None for a good one.
        conv: [N] conversions of each good sample ("grayscale", "caption_cp1252", ...).
        stats: the decoding pass, every sample counted once.
    """

    def __init__(self, images: torch.Tensor, rows: torch.Tensor | None, keys: Sequence[str], captions: Sequence[str],
                 skip: Sequence[str | None], conv: Sequence[tuple[str, ...]], stats: DataStats,
                 _derived: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        n = len(keys)
        shape = tuple(images.shape)
        if images.dtype != torch.uint8 or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise DataError(f"in-memory images must be uint8 [M,R,R,3], got {images.dtype} {list(images.shape)}")
        if not len(captions) == len(skip) == len(conv) == n or (rows is None and images.shape[0] != n) or (
                rows is not None and rows.shape != (n,)):
            raise DataError(f"in-memory store of {n} keys got {images.shape[0]} images, {len(captions)} captions, "
                            f"{len(skip)} skip reasons, {len(conv)} conversions"
                            + ("" if rows is None else f", {rows.shape[0]} rows"))
        self.images, self.rows, self.keys = images, rows, keys
        self.captions, self.skip, self.conv, self.stats = captions, skip, conv, stats
        if _derived is None:
            _derived = (np.array([s is not None for s in skip], dtype=bool),
                        np.array([bool(c) for c in conv], dtype=bool),
                        np.array([str_seed(k) for k in keys], dtype=np.uint64))
        self.bad, self.has_conv, self.key_seeds = _derived  # bool [N], bool [N], uint64 [N] (the flips' key hashes)
        self.any_bad, self.any_conv = bool(self.bad.any()), bool(self.has_conv.any())
        cpu = images.device.type == "cpu"
        self._images_np = images.numpy() if cpu else None  # the same memory
        self._rows_np = rows.numpy() if cpu and rows is not None else None
        self._lut: torch.Tensor | None = None  # FLOAT_OF_UINT8 on `device` (GPU path)
        self._exact = False  # the GPU path's arithmetic gives FLOAT_OF_UINT8 for every level

    @classmethod
    def from_items(cls, keys: Sequence[str], resolution: int, items: Iterable[dict[str, Any]]) -> "MemoryImages":
        """Collect `decode_uint8` items (sample i's image uint8 [R,R,3], or its skip marker), one per key, in order."""
        n, r = len(keys), resolution
        images = torch.empty((n, r, r, 3), dtype=torch.uint8)
        arr = images.numpy()  # the same memory, filled in place
        captions, skip, conv = [""] * n, [None] * n, [()] * n
        stats = DataStats()
        count = 0
        for i, it in enumerate(items):
            if i >= n or it.get("key") != keys[i]:
                raise DataError(f"decoding into memory: item {i} is {it.get('key')!r}, expected "
                                f"{keys[i] if i < n else 'no more items'!r}")
            count += 1
            if not stats.update(it):
                skip[i] = it[SKIP]
                arr[i] = 0
                continue
            arr[i] = it["image"]  # [R,R,3]
            captions[i], conv[i] = it["caption"], tuple(it.get(CONV) or ())
        if count != n:
            raise DataError(f"decoding into memory: got {count} items for {n} samples")
        return cls(images, None, keys, captions, skip, conv, stats)

    @classmethod
    def from_array(cls, array: np.ndarray, rows: np.ndarray | None, keys: Sequence[str],
                   captions: Sequence[str | None]) -> "MemoryImages":
        """Use a uint8 [M,R,R,3] array as it is (no copy); sample i is `array[rows[i]]` with caption `captions[i]`.

        A caption None marks the sample as skipped ("missing_caption"), as `make_sample` would.
        """
        if not array.flags.writeable:  # torch wants writable memory; a read-only array is copied once
            array = array.copy()
        if rows is not None and np.array_equal(rows, np.arange(array.shape[0])):
            rows = None
        skip = ["missing_caption" if c is None else None for c in captions]
        stats = DataStats()
        for k, s in zip(keys, skip):
            stats.update({"key": k, SKIP: s} if s else {"key": k})
        return cls(torch.from_numpy(array), None if rows is None else torch.from_numpy(rows), keys,
                   [c or "" for c in captions], skip, [()] * len(keys), stats)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def nbytes(self) -> int:
        """Bytes held by the images (and the row index)."""
        return self.images.numel() + (0 if self.rows is None else self.rows.numel() * 8)

    def to(self, device: str | torch.device) -> "MemoryImages":
        """The same store with its images on `device` (only the rows it uses); keys, captions, counts are shared."""
        dev = torch.device(device)
        if dev == self.device:
            return self
        images = self.images if self.rows is None else self.images.index_select(0, self.rows)  # [N,R,R,3]
        return MemoryImages(images.to(dev), None, self.keys, self.captions, self.skip, self.conv, self.stats,
                            _derived=(self.bad, self.has_conv, self.key_seeds))

    def gather(self, idx: np.ndarray, flips: np.ndarray | None = None) -> torch.Tensor:
        """Samples idx [B] (int64), mirrored where flips [B] (bool) -> float32 [B,3,R,R] in [-1,1] on `device`.

        On the CPU in NumPy, single-threaded (a torch op this size would use the intra-op thread pool, which on a
        busy machine costs more than the work); on a GPU in torch. Either way uint8 level v becomes exactly
        `to_tensor`'s value for v.
        """
        if self.device.type == "cpu":
            rows = idx if self._rows_np is None else self._rows_np[idx]
            x = self._images_np[rows]  # [B,R,R,3] uint8, a copy
            y = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # [B,3,R,R]
            if flips is not None and flips.any():
                y[flips] = y[flips, :, :, ::-1]  # mirror the width axis
            return torch.from_numpy(_to_float(y))  # [B,3,R,R] float32
        return self._gather_torch(idx, flips)

    def _gather_torch(self, idx: np.ndarray, flips: np.ndarray | None) -> torch.Tensor:
        """`gather` in torch ops on `device` (the GPU path; on the CPU only the tests call it)."""
        dev = self.device
        t = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(dev)  # [B]
        if self.rows is not None:
            t = self.rows[t]
        x = self.images.index_select(0, t).permute(0, 3, 1, 2)  # [B,3,R,R] uint8 (a strided view)
        if flips is not None and flips.any():
            f = torch.from_numpy(np.ascontiguousarray(flips, dtype=bool)).to(dev)  # [B]
            x = torch.where(f.view(-1, 1, 1, 1), x.flip(3), x)  # no host sync
        if self._lut is None:  # once per store: does this device's arithmetic give to_tensor's values?
            self._lut = torch.from_numpy(FLOAT_OF_UINT8).to(dev)  # [256]
            self._exact = torch.equal(_torch_arith(torch.arange(256, dtype=torch.uint8, device=dev)), self._lut)
        if self._exact:
            return _torch_arith(x)
        out = torch.empty(x.shape, dtype=torch.float32, device=dev)  # [B,3,R,R]
        step = max(1, LUT_CHUNK // x[0].numel())
        for s in range(0, x.shape[0], step):  # a table look-up (exact), in chunks to bound the int64 index
            out[s:s + step] = torch.take(self._lut, x[s:s + step].long())
        return out

    def batch(self, idx: np.ndarray, positions: np.ndarray, *, hflip: bool, seed: int) -> dict[str, Any]:
        """{"image": [B,3,R,R], "caption", "key"} of samples idx [B] asked for at stream positions [B].

        A sample is mirrored when hflip and `flip_decision(seed, key, position)`, as the streaming path decides.
        """
        flips = flip_decisions(seed, self.key_seeds[idx], positions) if hflip else None
        il = idx.tolist()
        return {"image": self.gather(idx, flips), "caption": [self.captions[i] for i in il],
                "key": [self.keys[i] for i in il]}

    def __repr__(self) -> str:
        return (f"MemoryImages(n={len(self)}, R={self.resolution}, {self.nbytes / 2**20:.1f} MiB on {self.device}, "
                f"bad={int(self.bad.sum())})")

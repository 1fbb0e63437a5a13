"""make_loader: an infinite, deterministic, resumable iterator of full batches, split over ranks and workers.

Map-style data that fits under a memory budget is decoded once into a uint8 tensor (`load_in_memory`), optionally on
the training device, and served by indexing it; the batches are the ones the streaming path would give.
"""

from __future__ import annotations

import signal
import weakref
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fastt2i.data.config import MAX_MEMORY_BYTES
from fastt2i.data.mapstyle import MapDataset
from fastt2i.data.memory import MemoryImages
from fastt2i.data.stats import POS, SKIP, DataStats
from fastt2i.data.transforms import mix64
from fastt2i.errors import DataError

MAX_REFILL_TRIES = 64
DECODE_CHUNK = 64  # samples per worker task while decoding into memory


def collate(items: Sequence[dict[str, Any]], stats: DataStats | None = None) -> dict[str, Any]:
    """Good samples -> {"image": [B,3,R,R], "caption": list[str], "key": list[str]}; skip markers are counted and dropped.

    Args:
        items: sample dicts / skip markers from a dataset.
        stats: where to count them (optional).
    """
    good = []
    for it in items:
        ok = stats.update(it) if stats is not None else SKIP not in it
        if ok:
            good.append(it)
    if not good:
        return {"image": torch.empty(0), "caption": [], "key": []}
    return {"image": torch.stack([g["image"] for g in good]),  # [B,3,R,R]
            "caption": [g["caption"] for g in good], "key": [g["key"] for g in good]}


def _identity(items: list) -> list:
    return items


def _worker_ignores_stop_signals(worker_id: int) -> None:
    """Workers leave SIGINT/SIGTERM to the main process, which stops after its current step and saves.

    `timeout`, SLURM and container runtimes signal the whole process group; torch's workers would die at once and the
    main process would fail at an arbitrary point. Workers still exit when the main process closes or dies.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _StreamPlan:
    """The global sample stream of a map-style dataset: epoch e is the permutation of range(N) seeded by (seed, e).

    Each epoch contributes `per_epoch` positions: N rounded down to whole global batches when drop_last (so no batch
    spans two epochs), else all N (batches may then straddle the epoch boundary; each is still full).
    """

    def __init__(self, n: int, global_batch: int, seed: int, drop_last: bool, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.per_epoch = (n // global_batch) * global_batch if drop_last else n
        if self.per_epoch == 0:
            self.per_epoch = n  # fewer samples than one global batch: keep streaming them
        self._epoch, self._perm = -1, np.arange(n)

    def _perm_of(self, e: int) -> np.ndarray:
        if e != self._epoch:
            self._epoch = e
            if self.shuffle:
                self._perm = np.random.default_rng([self.seed & 0xFFFFFFFF, e]).permutation(self.n)
        return self._perm

    def index(self, pos: int) -> int:
        e, off = divmod(pos, self.per_epoch)
        return int(self._perm_of(e)[off])

    def indices(self, pos: np.ndarray) -> np.ndarray:
        """`index` of each of the increasing positions pos [B] (int64) -> int64 [B]."""
        e, off = np.divmod(pos, self.per_epoch)
        if e[0] == e[-1]:  # the usual case: the batch lies in one epoch
            return self._perm_of(int(e[0]))[off].astype(np.int64)
        out = np.empty_like(off)
        for ep in range(int(e[0]), int(e[-1]) + 1):
            m = e == ep
            out[m] = self._perm_of(ep)[off[m]]
        return out

    def replacement(self, pos: int, attempt: int) -> int:
        """Index to try instead of a bad sample at `pos` (deterministic in (seed, pos, attempt), so resume-safe)."""
        return mix64(self.seed, pos, attempt, 0xB4D) % self.n


class _RankBatches:
    """Infinite batch sampler for one rank: lists of (index, stream position), batch_size each."""

    def __init__(self, plan: _StreamPlan, batch_size: int, rank: int, world_size: int, start: int) -> None:
        self.plan, self.b, self.rank, self.ws, self.start = plan, batch_size, rank, world_size, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = self.b * self.ws
        s = self.start
        while True:
            first = s + self.rank * self.b
            yield [(self.plan.index(p), p) for p in range(first, first + self.b)]
            s += g


class _Uint8View(Dataset):
    """`ds.decode_uint8(i)` as a Dataset, so DataLoader workers can decode a dataset into memory."""

    def __init__(self, dataset: MapDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.dataset.decode_uint8(i)


# dataset -> {device name: its store}: a dataset is decoded once however many loaders read it (freed with it)
_HELD: "weakref.WeakKeyDictionary[MapDataset, dict[str, MemoryImages]]" = weakref.WeakKeyDictionary()


def _device(device: str | torch.device | None) -> torch.device:
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def load_in_memory(dataset: MapDataset, *, num_workers: int = 0, device: str | torch.device | None = None,
                   progress: bool = False) -> MemoryImages:
    """Decode a map-style dataset once into a uint8 store [N,R,R,3] (on `device`); later calls return the same one.

    Every sample goes through `ds.decode_uint8` (decode, mode conversion, resize + crop; bad files become skip
    reasons, counted once in `.stats`), in `num_workers` DataLoader workers when > 0. An `.npz` of uint8 RGB images
    at the training resolution is not decoded at all: its own array is the store (`NpzDataset.direct_memory`).
    The store lives as long as the dataset object; a store on a GPU keeps no second copy in host memory.

    Args:
        dataset: a folder, manifest or npz dataset from `open_dataset`.
        num_workers: worker processes for the decoding pass.
        device: where the images live (None: CPU).
        progress: show a progress bar (on a terminal, after 2 s).
    """
    if not isinstance(dataset, MapDataset):
        raise DataError(f"in-memory loading needs a map-style dataset (folder, manifest, npz), got {dataset!r}")
    dev = _device(device)
    held = _HELD.setdefault(dataset, {})
    if str(dev) in held:
        return held[str(dev)]
    cpu = held.get("cpu")
    if cpu is None:
        cpu = dataset.direct_memory()
        direct = cpu is not None
        if cpu is None:
            chunks = [list(range(s, min(s + DECODE_CHUNK, len(dataset)))) for s in range(0, len(dataset), DECODE_CHUNK)]
            kw: dict[str, Any] = {}
            if num_workers > 0:
                kw = {"num_workers": min(num_workers, len(chunks)), "worker_init_fn": _worker_ignores_stop_signals,
                      "prefetch_factor": 4}
            loader = DataLoader(_Uint8View(dataset), batch_sampler=chunks, collate_fn=_identity, **kw)
            items = tqdm((it for chunk in loader for it in chunk), total=len(dataset), desc="decode into memory",
                         unit="img", delay=2.0, disable=None if progress else True, leave=False)
            cpu = MemoryImages.from_items(dataset.keys, dataset.cfg.resolution, items)
        if dev.type == "cpu" or direct:  # an npz's own array costs nothing more to keep
            held["cpu"] = cpu
    held[str(dev)] = mem = cpu.to(dev)
    return mem


def _use_memory(dataset: Any, in_memory: bool | None, max_memory_bytes: int) -> bool:
    """Whether make_loader serves `dataset` from memory: None = when it fits the budget; True = it must."""
    if in_memory is False:
        return False
    if not isinstance(dataset, MapDataset):
        if in_memory:
            kind = "WebDataset shards stream" if getattr(dataset, "is_iterable", False) else "it is not a MapDataset"
            raise DataError(f"in_memory=True needs a folder, manifest or npz dataset; {dataset!r}: {kind}")
        return False
    need = dataset.memory_bytes()
    if need <= max_memory_bytes:
        return True
    if in_memory:
        raise DataError(f"in_memory=True: {dataset!r} takes {need / 2**20:.1f} MiB decoded (N x R x R x 3 bytes), "
                        f"over max_memory_bytes={max_memory_bytes} ({max_memory_bytes / 2**20:.1f} MiB); raise "
                        f"max_memory_bytes, lower the resolution, or stream it with in_memory=False")
    return False


class BatchIterator:
    """Infinite iterator of batches {"image": [B,3,R,R], "caption": list[str], "key": list[str]} for one rank.

    Attributes:
        stats: DataStats over everything this rank's iterator received (worker counts arrive with the items). In
            memory, the same counts the stream would have made: a bad file drawn twice counts twice.
        samples_seen: the global sample count after the last batch returned (save it; pass it back as
            `start_sample` to resume). Map-style: exact. Shards: the count, resume is approximate.
        shards: (shards only) the shards this rank reads.
        memory: (in memory only) the MemoryImages served from; `memory.stats` counts each file once.
        device: where batch["image"] is put (None: CPU).
    """

    def __init__(self, dataset: Any, batch_size: int, *, seed: int, rank: int, world_size: int, num_workers: int,
                 start_sample: int, drop_last: bool, shuffle: bool, prefetch_factor: int | None,
                 in_memory: bool | None = False, max_memory_bytes: int = MAX_MEMORY_BYTES,
                 device: str | torch.device | None = None) -> None:
        self.dataset, self.batch_size, self.seed, self.rank, self.world_size = dataset, batch_size, seed, rank, world_size
        self.num_workers = num_workers
        self.stats = DataStats()
        self.samples_seen = start_sample
        self.shards: list[str] | None = None
        self.memory: MemoryImages | None = None
        self.device = None if device is None else _device(device)
        use_memory = _use_memory(dataset, in_memory, max_memory_bytes)
        kw: dict[str, Any] = {"num_workers": num_workers, "collate_fn": _identity}
        if num_workers > 0:
            kw["prefetch_factor"] = prefetch_factor or 2
            kw["worker_init_fn"] = _worker_ignores_stop_signals
        if getattr(dataset, "is_iterable", False):
            self._plan = None
            self.shards = dataset.shards_for(rank, world_size)
            if not self.shards:
                raise DataError(f"rank {rank} of {world_size} gets no shard ({len(dataset.shards)} shards): "
                                f"use at least world_size shards")
            kw["num_workers"] = min(num_workers, len(self.shards))
            if kw["num_workers"] == 0:
                kw.pop("prefetch_factor", None)
                kw.pop("worker_init_fn", None)
            ds = dataset.configure(rank=rank, world_size=world_size, seed=seed, skip=start_sample, shuffle=shuffle)
            self._loader = DataLoader(ds, batch_size=batch_size, **kw)
            self._buffer: list[dict[str, Any]] = []
        else:
            n = len(dataset)
            if n == 0:
                raise DataError(f"{dataset!r} has no samples (check the path and the split)")
            self._plan = _StreamPlan(n, batch_size * world_size, seed, drop_last, shuffle)
            if use_memory:  # no DataLoader: batches are gathered from the store in this process
                self.memory = load_in_memory(dataset, num_workers=num_workers, device=self.device,
                                             progress=rank == 0)
                self._loader = self._it = None  # type: ignore[assignment]
                return
            sampler = _RankBatches(_StreamPlan(n, batch_size * world_size, seed, drop_last, shuffle), batch_size,
                                   rank, world_size, start_sample)
            self._loader = DataLoader(dataset, batch_sampler=sampler, **kw)
        self._it = iter(self._loader)

    def __iter__(self) -> "BatchIterator":
        return self

    @property
    def in_memory(self) -> bool:
        """True when batches are gathered from a decoded in-memory store (no workers, no decoding per batch)."""
        return self.memory is not None

    def __next__(self) -> dict[str, Any]:
        if self.memory is not None:
            batch = self._next_memory()
        else:
            batch = collate(self._next_map() if self._plan is not None else self._next_stream())
            if self.device is not None:
                batch["image"] = batch["image"].to(self.device)
        self.samples_seen += self.batch_size * self.world_size
        return batch

    def _next_memory(self) -> dict[str, Any]:
        """The batch `_next_map` would build, from the store: same indices, refills, flips and counts."""
        mem, plan, b = self.memory, self._plan, self.batch_size
        assert mem is not None and plan is not None
        first = self.samples_seen + self.rank * b
        pos = np.arange(first, first + b, dtype=np.int64)  # [B] stream positions of this rank's slice
        idx = plan.indices(pos)  # [B] sample indices
        if mem.any_bad:
            for j in np.flatnonzero(mem.bad[idx]):
                idx[j] = self._refill(int(idx[j]), int(pos[j]))
        self.stats.read += b  # the good reads; bad ones were counted by _refill
        self.stats.ok += b
        if mem.any_conv:
            for i in idx[mem.has_conv[idx]]:
                self.stats.converted.update(mem.conv[i])
        cfg = self.dataset.cfg
        return mem.batch(idx, pos, hflip=cfg.hflip, seed=cfg.seed)

    def _refill(self, i: int, pos: int) -> int:
        """The sample that replaces bad sample i at stream position pos (as `_next_map` picks and counts it)."""
        mem, attempt = self.memory, 0
        assert mem is not None and self._plan is not None
        while mem.bad[i]:
            self.stats.update({"key": mem.keys[i], SKIP: mem.skip[i]})
            attempt += 1
            if attempt > MAX_REFILL_TRIES:
                raise DataError(f"{MAX_REFILL_TRIES} bad samples in a row while refilling a batch; "
                                f"{self.stats.report()}")
            i = self._plan.replacement(pos, attempt)
        return i

    def _next_map(self) -> list[dict[str, Any]]:
        items = next(self._it)
        out = []
        for it in items:
            pos = it.get(POS, 0)
            attempt = 0
            while not self.stats.update(it):  # refill a bad sample deterministically from (seed, pos)
                attempt += 1
                if attempt > MAX_REFILL_TRIES:
                    raise DataError(f"{MAX_REFILL_TRIES} bad samples in a row while refilling a batch; "
                                    f"{self.stats.report()}")
                it = self.dataset[(self._plan.replacement(pos, attempt), pos)]  # type: ignore[union-attr]
            out.append(it)
        return out

    def _next_stream(self) -> list[dict[str, Any]]:
        while len(self._buffer) < self.batch_size:
            try:
                items = next(self._it)
            except StopIteration:
                raise DataError(f"the shards of rank {self.rank} yielded no usable sample; {self.stats.report()}") from None
            for it in items:
                if self.stats.update(it):
                    self._buffer.append(it)
        out, self._buffer = self._buffer[: self.batch_size], self._buffer[self.batch_size:]
        return out

    def state_dict(self) -> dict[str, int]:
        """{"samples_seen": n}: what to pass back as start_sample."""
        return {"samples_seen": self.samples_seen}

    def close(self) -> None:
        """Stop the worker processes."""
        self._it = None  # type: ignore[assignment]
        self._loader = None  # type: ignore[assignment]


def make_loader(dataset: Dataset, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                num_workers: int = 0, start_sample: int = 0, drop_last: bool = True, shuffle: bool = True,
                prefetch_factor: int | None = None, in_memory: bool | None = None,
                max_memory_bytes: int = MAX_MEMORY_BYTES, device: str | torch.device | None = None) -> BatchIterator:
    """An infinite iterator of full batches for one rank (no torch.distributed needed).

    Map-style datasets: the global stream is epoch permutations seeded by (seed, epoch); global batch k is stream
    positions [k*G, (k+1)*G) with G = batch_size * world_size, and rank r takes [k*G + r*B, k*G + (r+1)*B). A bad
    sample is replaced by a deterministic pick from (seed, position), so every batch has exactly batch_size items and
    `start_sample` (samples consumed globally, `it.samples_seen`) resumes with bit-identical batches.
    Shards: shards[rank::world_size] then [worker::num_workers]; resume skips about start_sample samples.

    In memory (map-style data whose decoded uint8 images fit `max_memory_bytes`): every sample is decoded once
    (`load_in_memory`, in `num_workers` workers), then each batch is a gather from that store in this process, on
    `device` when given. Same batches as streaming (images, captions, keys, order, flips, refills, `stats`) for the
    same seed / rank / world_size / start_sample, so runs resume exactly across the two paths.

    Args:
        dataset: from `open_dataset`.
        batch_size: samples per batch on this rank (B).
        seed: shuffling seed.
        rank: this process's rank.
        world_size: number of processes.
        num_workers: DataLoader worker processes (their skip/convert counts reach `it.stats`).
        start_sample: samples already consumed globally (resume).
        drop_last: map-style: drop each epoch's last partial global batch (else batches span epochs).
        shuffle: False streams in dataset order (useful for evaluation).
        prefetch_factor: batches prefetched per worker.
        in_memory: None: in memory when the dataset is map-style and `ds.memory_bytes()` <= max_memory_bytes;
            True: in memory (a DataError if it is shards or over the budget); False: stream, decoding every batch.
        max_memory_bytes: the budget for in_memory (per process; default 4 GiB).
        device: put batch["image"] there; in memory, the store itself lives there (e.g. the training GPU).
    """
    if in_memory not in (None, True, False):
        raise DataError(f"in_memory must be None (auto), True or False, got {in_memory!r}")
    if not isinstance(max_memory_bytes, int) or max_memory_bytes < 0:
        raise DataError(f"max_memory_bytes must be an integer >= 0, got {max_memory_bytes!r}")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in [0, world_size={world_size})")
    if start_sample < 0 or num_workers < 0:
        raise DataError("start_sample and num_workers must be >= 0")
    return BatchIterator(dataset, batch_size, seed=seed, rank=rank, world_size=world_size, num_workers=num_workers,
                         start_sample=start_sample, drop_last=drop_last, shuffle=shuffle,
                         prefetch_factor=prefetch_factor, in_memory=in_memory, max_memory_bytes=max_memory_bytes,
                         device=device)

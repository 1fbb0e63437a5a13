"""make_loader: an infinite, deterministic, resumable iterator of full batches, split over ranks and workers."""

from __future__ import annotations

import signal
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fastt2i.data.stats import POS, SKIP, DataStats
from fastt2i.data.transforms import mix64
from fastt2i.errors import DataError

MAX_REFILL_TRIES = 64


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

    def index(self, pos: int) -> int:
        e, off = divmod(pos, self.per_epoch)
        if e != self._epoch:
            self._epoch = e
            if self.shuffle:
                self._perm = np.random.default_rng([self.seed & 0xFFFFFFFF, e]).permutation(self.n)
        return int(self._perm[off])

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


class BatchIterator:
    """Infinite iterator of batches {"image": [B,3,R,R], "caption": list[str], "key": list[str]} for one rank.

    Attributes:
        stats: DataStats over everything this rank's iterator received (worker counts arrive with the items).
        samples_seen: the global sample count after the last batch returned (save it; pass it back as
            `start_sample` to resume). Map-style: exact. Shards: the count, resume is approximate.
        shards: (shards only) the shards this rank reads.
    """

    def __init__(self, dataset: Any, batch_size: int, *, seed: int, rank: int, world_size: int, num_workers: int,
                 start_sample: int, drop_last: bool, shuffle: bool, prefetch_factor: int | None) -> None:
        self.dataset, self.batch_size, self.seed, self.rank, self.world_size = dataset, batch_size, seed, rank, world_size
        self.num_workers = num_workers
        self.stats = DataStats()
        self.samples_seen = start_sample
        self.shards: list[str] | None = None
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
            sampler = _RankBatches(_StreamPlan(n, batch_size * world_size, seed, drop_last, shuffle), batch_size,
                                   rank, world_size, start_sample)
            self._loader = DataLoader(dataset, batch_sampler=sampler, **kw)
        self._it = iter(self._loader)

    def __iter__(self) -> "BatchIterator":
        return self

    def __next__(self) -> dict[str, Any]:
        items = self._next_map() if self._plan is not None else self._next_stream()
        self.samples_seen += self.batch_size * self.world_size
        return collate(items)

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
                prefetch_factor: int | None = None) -> BatchIterator:
    """An infinite iterator of full batches for one rank (no torch.distributed needed).

    Map-style datasets: the global stream is epoch permutations seeded by (seed, epoch); global batch k is stream
    positions [k*G, (k+1)*G) with G = batch_size * world_size, and rank r takes [k*G + r*B, k*G + (r+1)*B). A bad
    sample is replaced by a deterministic pick from (seed, position), so every batch has exactly batch_size items and
    `start_sample` (samples consumed globally, `it.samples_seen`) resumes with bit-identical batches.
    Shards: shards[rank::world_size] then [worker::num_workers]; resume skips about start_sample samples.

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
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in [0, world_size={world_size})")
    if start_sample < 0 or num_workers < 0:
        raise DataError("start_sample and num_workers must be >= 0")
    return BatchIterator(dataset, batch_size, seed=seed, rank=rank, world_size=world_size, num_workers=num_workers,
                         start_sample=start_sample, drop_last=drop_last, shuffle=shuffle,
                         prefetch_factor=prefetch_factor)

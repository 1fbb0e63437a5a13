"""Text-embedding caches: on disk (one safetensors file per (encoder identity, text), written atomically) and an
in-memory LRU (`MemoryTextCache`, for servers)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from fastt2i.errors import ConfigError
from fastt2i.text.base import TextEmbedding, TextEncoder, check_texts, short_hash


def default_cache_dir() -> Path:
    """`$FASTT2I_CACHE/text` if FASTT2I_CACHE is set, else `$XDG_CACHE_HOME/fastt2i/text` (~/.cache/fastt2i/text)."""
    root = os.environ.get("FASTT2I_CACHE")
    if root:
        return Path(root).expanduser() / "text"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "fastt2i" / "text"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a unique temporary file in the same directory, then rename over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class CachedTextEncoder(TextEncoder):
    """Wraps a frozen TextEncoder with an on-disk cache; `encode` returns exactly what the encoder returned.

    Layout: `cache_dir/<sha256(identity)[:20]>/<h[:2]>/<h[2:]>.safetensors` with h = sha256 of the UTF-8 text; each
    file holds `tokens` [n, D] (only the n real tokens, in the encoder's dtype), `pooled` [P] and the text itself in
    the metadata (checked on read). `identity.txt` beside them names the encoder. Files are written to a temporary
    name and renamed, so concurrent processes can fill the same cache; an unreadable file counts as a miss and is
    rewritten. Cached rows are re-padded with zeros (mask False) to the longest text of the batch, which is what the
    encoders return, so results are bit-exact with the encoder's output when the entry was written.

    `stats` counts `hits` / `misses` (unique texts per call), `encoder_calls` and `encoded` (texts sent to the encoder).

    Args:
        encoder: a frozen encoder (a trainable one is refused: its outputs change as it trains).
        cache_dir: root directory; default `default_cache_dir()` (~/.cache/fastt2i/text, or $FASTT2I_CACHE/text).
    """

    def __init__(self, encoder: TextEncoder, cache_dir: str | Path | None = None):
        if isinstance(encoder, CachedTextEncoder):
            raise ConfigError("this text encoder is already cached")
        if encoder.trainable:
            raise ConfigError(
                f"cannot cache the trainable text encoder {encoder.name!r}: its outputs change as it trains; "
                "load it frozen (trainable=False) or drop the cache"
            )
        super().__init__(trainable=False)
        self.encoder = encoder
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.name = encoder.name
        self.dim, self.pooled_dim, self.max_length = encoder.dim, encoder.pooled_dim, encoder.max_length
        self.stats = {"hits": 0, "misses": 0, "encoder_calls": 0, "encoded": 0}
        self._dirs: dict[str, Path] = {}
        self._finish_init()

    # The wrapper has no state of its own: identity, device and dtype are the wrapped encoder's.
    def _weights_id(self) -> str:
        return self.encoder._weights_id()

    def _encode(self, texts: list[str]) -> TextEmbedding:
        return self.encoder.encode(texts)

    @property
    def identity(self) -> str:
        return self.encoder.identity

    def set_trainable(self, trainable: bool) -> CachedTextEncoder:
        if trainable:
            raise ConfigError("cannot make a cached text encoder trainable; use the wrapped `.encoder` without cache")
        return super().set_trainable(False)

    def entry_dir(self) -> Path:
        """The directory holding this encoder's entries (created with an identity.txt on first use)."""
        ident = self.identity
        d = self._dirs.get(ident)
        if d is None:
            d = self.cache_dir / short_hash(ident, n=20)
            if not (d / "identity.txt").is_file():
                _atomic_write(d / "identity.txt", (ident + "\n").encode())
            self._dirs[ident] = d
        return d

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def path_for(self, text: str) -> Path:
        """Where the entry of `text` lives (whether or not it exists)."""
        h = self._key(text)
        return self.entry_dir() / h[:2] / f"{h[2:]}.safetensors"

    def _read(self, path: Path, text: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("text") != text:
                    return None
                return f.get_tensor("tokens"), f.get_tensor("pooled")  # [n, D], [P]
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a torn or foreign file is a miss; it is rewritten below
            return None

    def _write(self, path: Path, text: str, tokens: torch.Tensor, pooled: torch.Tensor) -> None:
        data = st_save({"tokens": tokens.contiguous(), "pooled": pooled.contiguous()}, metadata={"text": text})
        _atomic_write(path, data)

    def encode(self, texts: Sequence[str]) -> TextEmbedding:
        """Encode texts, reading cached entries and encoding (then storing) only the missing ones.

        Args:
            texts: B strings.

        Returns:
            The same TextEmbedding as `encoder.encode(texts)` (tokens [B, L, D], mask [B, L], pooled [B, P]).
        """
        texts = check_texts(texts)
        if self.encoder.trainable:
            raise ConfigError(f"the cached text encoder {self.name!r} was made trainable; caching it is refused")
        if not texts:
            return self.encoder.encode([])
        unique = list(dict.fromkeys(texts))
        paths = {t: self.path_for(t) for t in unique}
        rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for t in unique:
            got = self._read(paths[t], t)
            if got is not None:
                rows[t] = got
        missing = [t for t in unique if t not in rows]
        self.stats["hits"] += len(unique) - len(missing)
        self.stats["misses"] += len(missing)
        if missing:
            emb = self.encoder.encode(missing).to("cpu")
            self.stats["encoder_calls"] += 1
            self.stats["encoded"] += len(missing)
            for i, (t, n) in enumerate(zip(missing, emb.lengths.tolist())):
                tok, pooled = emb.tokens[i, :n].clone(), emb.pooled[i].clone()  # [n, D], [P]
                self._write(paths[t], t, tok, pooled)
                rows[t] = (tok, pooled)
        return self._assemble([rows[t] for t in texts]).to(self.encoder.device)

    def _assemble(self, rows: list[tuple[torch.Tensor, torch.Tensor]]) -> TextEmbedding:
        lengths = torch.tensor([r[0].shape[0] for r in rows])  # [B]
        L = int(lengths.max())
        first = rows[0][0]
        tokens = first.new_zeros(len(rows), L, first.shape[1])  # [B, L, D]
        for i, (tok, _) in enumerate(rows):
            tokens[i, : tok.shape[0]] = tok
        mask = torch.arange(L)[None, :] < lengths[:, None]  # [B, L]
        pooled = torch.stack([r[1] for r in rows])  # [B, P]
        return TextEmbedding(tokens=tokens, mask=mask, pooled=pooled)

    def fill(self, texts: Sequence[str], batch_size: int = 256, progress: bool = False) -> int:
        """Make sure every text has an entry, encoding missing ones in batches; returns how many were encoded.

        Args:
            texts: the texts (duplicates are fine).
            batch_size: texts per encoder call.
            progress: show a tqdm bar.
        """
        texts = list(dict.fromkeys(check_texts(texts)))
        todo = [t for t in texts if not self.path_for(t).is_file()]
        it = range(0, len(todo), batch_size)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"caching {self.name} embeddings", unit="batch")
        for s in it:
            chunk = todo[s : s + batch_size]
            emb = self.encoder.encode(chunk).to("cpu")
            self.stats["encoder_calls"] += 1
            self.stats["encoded"] += len(chunk)
            for i, (t, n) in enumerate(zip(chunk, emb.lengths.tolist())):
                self._write(self.path_for(t), t, emb.tokens[i, :n].clone(), emb.pooled[i].clone())
        return len(todo)

    def extra_repr(self) -> str:
        return f"cache_dir={str(self.cache_dir)!r}"


class MemoryTextCache(TextEncoder):
    """An LRU of text embeddings in memory, in front of a frozen encoder: `encode` returns, for each text, what
    `encoder.encode([text])` returned (each text encoded alone, so a text's embedding never depends on the other
    texts of a batch), zero-padded to the longest text of the batch (`TextEmbedding.cat`).

    `stats` counts `hits` and `misses` (texts).

    Args:
        encoder: the frozen text encoder of a pipeline.
        size: texts kept (least recently used dropped first); 0 keeps none.
    """

    def __init__(self, encoder: TextEncoder, size: int = 1024):
        super().__init__(trainable=False)
        if getattr(encoder, "trainable", False):
            raise ConfigError(f"cannot cache the trainable text encoder {getattr(encoder, 'name', '?')!r}")
        self.encoder = encoder
        self.name, self.dim, self.pooled_dim = encoder.name, encoder.dim, encoder.pooled_dim
        self.max_length = getattr(encoder, "max_length", 0)
        self.size = int(size)
        self._rows: OrderedDict[str, TextEmbedding] = OrderedDict()  # text -> [1,L,D] / [1,L] / [1,P]
        self.stats = {"hits": 0, "misses": 0}
        self._finish_init()

    def _weights_id(self) -> str:
        return self.encoder._weights_id()

    def _encode(self, texts: list[str]) -> TextEmbedding:
        return self.encoder.encode(texts)

    @property
    def identity(self) -> str:
        return self.encoder.identity

    def encode(self, texts: Sequence[str]) -> TextEmbedding:
        """TextEmbedding (tokens [B,L,D], mask [B,L], pooled [B,P]) of B texts, each from the cache or encoded alone."""
        texts = check_texts(texts)
        if not texts:
            return self.encoder.encode([])
        rows = []
        for text in texts:
            row = self._rows.get(text)
            if row is None:
                self.stats["misses"] += 1
                row = self.encoder.encode([text])
                if self.size:
                    self._rows[text] = row
                    while len(self._rows) > self.size:
                        self._rows.popitem(last=False)
            else:
                self.stats["hits"] += 1
                self._rows.move_to_end(text)
            rows.append(row)
        return TextEmbedding.cat(rows)

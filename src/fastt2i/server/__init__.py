"""The HTTP face of fastt2i: a FastAPI app (/v1 API, /healthz, a live-editing page) over `load_pipeline` and
`fastt2i.editing`, with micro-batching, a bounded queue and per-request limits (`fastt2i serve`; docs/server.md)."""

from fastt2i.server.app import create_app
from fastt2i.server.batching import MicroBatcher, QueueFull
from fastt2i.server.config import ServerConfig
from fastt2i.server.models import MemoryTextCache, ModelEntry, load_models, wrap_pipeline

__all__ = ["MemoryTextCache", "MicroBatcher", "ModelEntry", "QueueFull", "ServerConfig", "create_app", "load_models",
           "wrap_pipeline"]

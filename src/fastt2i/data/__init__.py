"""Image-text datasets (folder, manifest, WebDataset shards, npz), the resumable loader, and dataset building tools."""

from fastt2i.data.config import DataConfig
from fastt2i.data.loader import BatchIterator, collate, load_in_memory, make_loader
from fastt2i.data.mapstyle import FolderDataset, ManifestDataset, MapDataset, NpzDataset
from fastt2i.data.memory import MemoryImages
from fastt2i.data.open import detect_format, open_dataset
from fastt2i.data.shards import ShardDataset, expand_shards, write_shards
from fastt2i.data.stats import DataStats
from fastt2i.data.transforms import decode_image, in_split, key_fraction, resize_center_crop

__all__ = [
    "BatchIterator", "DataConfig", "DataStats", "FolderDataset", "ManifestDataset", "MapDataset", "MemoryImages",
    "NpzDataset", "ShardDataset", "collate", "decode_image", "detect_format", "expand_shards", "in_split",
    "key_fraction", "load_in_memory", "make_loader", "open_dataset", "resize_center_crop", "write_shards",
]

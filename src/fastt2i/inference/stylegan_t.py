"""`StyleGANTPipeline`: text encoder + StyleGAN-T generator -> images for (prompt, seed) pairs (GigaGAN's pipeline).

    pipe = StyleGANTPipeline.from_pretrained("runs/stylegan-t-emoji64")     # or fastt2i.inference.load_pipeline(...)
    images = pipe.generate(["red heart"], [0])                              # [1,3,64,64] in [-1,1]

The StyleGAN-T generator has the GigaGAN generator's interface (`text_condition`, `mapping`, `synthesis`, `w_avg`),
so everything but the export class and one loading detail is `GigaGANPipeline`: per-seed z, constant noise,
text-conditioned truncation with the per-prompt mean-w cache, bf16/fp16 synthesis. The detail: an export written by
the `text-encoder` training phase carries its fine-tuned encoder in a sub-directory and names it with a relative
spec such as ``minilm:./text_encoder``; `from_pretrained` resolves such a path against the export directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import fastt2i.models.stylegan_t  # noqa: F401  (registers the generator's export class for load_pretrained)
from fastt2i.inference.gigagan import GigaGANPipeline, _resolve_export
from fastt2i.serialization import read_export_config

GENERATOR_CLASS = "stylegan-t-generator"
LOCAL_PREFIX = "./"  # a text-encoder source starting with this lies inside the export directory


def resolve_text_encoder_spec(spec: str | None, export_dir: str | Path) -> str | None:
    """`NAME:./sub` -> `NAME:/abs/export_dir/sub` (an encoder shipped inside the export); other specs unchanged.

    Args:
        spec: the export's recorded text-encoder spec (or None).
        export_dir: the export directory the relative path belongs to.
    """
    if not spec or ":" not in spec:
        return spec
    name, _, source = spec.partition(":")
    if not source.startswith(LOCAL_PREFIX):
        return spec
    return f"{name}:{(Path(export_dir).expanduser().absolute() / source[len(LOCAL_PREFIX):]).as_posix()}"


class StyleGANTPipeline(GigaGANPipeline):
    """Chains the text encoder and a `StyleGANTGenerator`: ``pipe.generate(prompts, seeds) -> [B,3,H,W]``.

    Same arguments and behaviour as `GigaGANPipeline` (see there); loads "stylegan-t-generator" exports.

    Args:
        generator: a `StyleGANTGenerator`.
        text_encoder: the encoder whose widths match the generator config (`text_dim`, `pooled_width`).
        truncation_samples: z samples averaged for the text-conditioned mean w when truncating.
        dtype: compute dtype of the synthesis: "fp32" (default), "bf16" or "fp16".
        w_mean_cache_size: prompts whose conditional mean w is cached (0 = no cache).
    """

    generator_class = GENERATOR_CLASS

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: torch.device | str | None = None,
        text_encoder: str | nn.Module | None = None,
        dtype: str | torch.dtype | None = None,
        **kw: Any,
    ) -> StyleGANTPipeline:
        """Load a stylegan-t-generator export (or a run dir with `export/`) and the text encoder it names.

        Args:
            path: export directory (model.safetensors + config.json) or run directory.
            device: where to put generator and encoder (default CPU).
            text_encoder: override the recorded encoder (a spec string or an encoder object); a recorded
                ``NAME:./dir`` (a fine-tuned encoder inside the export) is resolved against the export directory.
            dtype: compute dtype of the synthesis ("fp32", "bf16", "fp16"; weights stay fp32).
            **kw: passed to the constructor (truncation_samples, w_mean_cache_size).
        """
        p = _resolve_export(path)
        if text_encoder is None:
            text_encoder = resolve_text_encoder_spec(read_export_config(p).get("text_encoder"), p)
        return super().from_pretrained(p, device=device, text_encoder=text_encoder, dtype=dtype, **kw)


__all__ = ["GENERATOR_CLASS", "StyleGANTPipeline", "resolve_text_encoder_spec"]

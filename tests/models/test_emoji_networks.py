"""emoji-clip / emoji-net: training through `fastt2i train`, exact resume, export, the bundled weights, metrics roles."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fastt2i.cli import main
from fastt2i.data import open_dataset
from fastt2i.models import load_pretrained
from fastt2i.losses.contrastive import clip_contrastive_loss
from fastt2i.training.emoji import CaptionTable, cosine_lr, jitter, retrieval_topk


def train(family, data, run_dir, *extra):
    return main(["train", family, "--preset", "tiny", "--data", str(data), "--run-dir", str(run_dir),
                 "--no-progress", *extra])


@pytest.mark.parametrize("family", ["emoji-clip", "emoji-net"])
def test_tiny_preset_trains_exports_and_reloads(family, emoji_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "run"
    assert train(family, emoji_npz, run, "--set", "train.val_fraction=0.3", "--set", "train.eval_kimg=0.032") == 0
    model = load_pretrained(run / "export")
    assert (run / "export" / "README.md").read_text().startswith(f"# {family}")
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records and all(math.isfinite(v) for r in records for k, v in r.items() if k.startswith("val/"))
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    if family == "emoji-clip":
        emb = model.encode_image(x)
        assert emb.shape == (3, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
        assert (run / "text_pooled.safetensors").is_file()
    else:
        assert set(model.config.styles) == {"google", "twitter", "openmoji"}
        assert len(model.config.subcategories) == 6 and model.features(x).shape == (3, model.feature_dim)


def test_emoji_clip_resume_is_exact(emoji_npz, tmp_path, monkeypatch):
    """Stopping after the first state and rerunning gives the uninterrupted run's weights (text table included)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a, b = tmp_path / "a", tmp_path / "b"
    assert train("emoji-clip", emoji_npz, a) == 0
    assert train("emoji-clip", emoji_npz, b, "--kimg", "0.032") == 0  # half, then extend the same run
    assert train("emoji-clip", emoji_npz, b) == 0
    wa = load_pretrained(a / "export").state_dict()
    wb = load_pretrained(b / "export").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_train_cli_dry_run_presets_and_errors(tmp_path, capsys):
    assert main(["train", "emoji-net", "--preset", "tiny", "--dry-run", "--set", "lr=0.01", "--kimg", "3"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["lr"] == 0.01 and cfg["train"]["kimg"] == 3 and cfg["train"]["caption_field"] == "subcategories"
    assert main(["train", "emoji-clip", "--list-presets"]) == 0
    assert capsys.readouterr().out.split() == ["default", "tiny"]
    assert main(["train", "emoji-clip", "--preset", "huge"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert main(["train", "emoji-clip", "--preset", "tiny", "--set", "bogus=1"]) == 2
    assert main(["train", "emoji-clip", "--preset", "tiny"]) == 2
    assert "--data" in capsys.readouterr().err


def test_caption_table_is_stable_across_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caps = ["red heart, smileys & emotion, google style", "sushi, food & drink, twitter style"]
    t = CaptionTable("minilm", tmp_path / "t.safetensors")
    first = t(caps)
    t.save()
    again = CaptionTable("minilm", tmp_path / "t.safetensors")
    assert torch.equal(again(caps), first) and again._encoder is None  # read from the file, no encoder loaded
    assert CaptionTable("byt5-tiny-random", tmp_path / "t.safetensors").rows == {}  # another encoder: not reused


def test_contrastive_loss_and_retrieval_on_known_cases():
    e = torch.eye(4)
    assert clip_contrastive_loss(e, e, math.log(100)) < 1e-3
    assert clip_contrastive_loss(e, e.roll(1, 0), math.log(100)) > 10
    r = retrieval_topk(e, 0.8 * e.roll(1, 0) + 0.6 * e, ks=(1, 2))  # each caption's own image ranks second
    assert r["t2i_top1"] == 0 and r["t2i_top2"] == 1.0 and r["i2t_top1"] == 0 and r["i2t_top2"] == 1.0
    assert retrieval_topk(e, e)["t2i_top1"] == 1.0


def test_schedule_and_jitter():
    assert cosine_lr(1.0, 0, 100, 10) == pytest.approx(0.1)
    assert cosine_lr(1.0, 10, 100, 10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 100, 100, 10) == pytest.approx(0.05)
    white = torch.ones(2, 3, 16, 16)
    assert torch.allclose(jitter(white, 3, 0.1), white, atol=1e-5)  # white fill: a white image stays white
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    assert not torch.allclose(jitter(x, 3, 0.1), x)


def test_emoji_split_holds_out_every_style_and_skin_tone(emoji_npz):
    from fastt2i.data.transforms import emoji_group

    assert emoji_group("google_1f44d-1f3fb") == emoji_group("twitter_1f44d") == "1f44d"
    assert emoji_group("openmoji_2764-fe0f") == "2764"
    val = open_dataset(emoji_npz, split="val", split_by="emoji", val_fraction=0.4)
    train_ = open_dataset(emoji_npz, split="train", split_by="emoji", val_fraction=0.4)
    gv = {emoji_group(val.key(i)) for i in range(len(val))}
    gt = {emoji_group(train_.key(i)) for i in range(len(train_))}
    assert gv and gt and not (gv & gt) and len(val) + len(train_) == 24
    # by key, the same emoji lands on both sides
    kv = open_dataset(emoji_npz, split="val", val_fraction=0.4)
    kt = open_dataset(emoji_npz, split="train", val_fraction=0.4)
    assert {emoji_group(kv.key(i)) for i in range(len(kv))} & {emoji_group(kt.key(i)) for i in range(len(kt))}
    assert kv.caption(0) == kv[0]["caption"]


def test_bundled_networks_load_and_register_as_metric_roles():
    from fastt2i.metrics import EXTRACTORS, METRICS

    net, clip = EXTRACTORS.build("emojinet"), EXTRACTORS.build("emojiclip")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert net(x).shape == (2, 256) and clip(x).shape == (2, 384)
    assert net.identity.startswith("emoji-net:") and clip.identity.startswith("emoji-clip:")
    for name in ["fd_emojinet", "kid_emojinet", "pr_emojinet", "clipscore_emojiclip", "cmmd_emojiclip"]:
        assert name in METRICS

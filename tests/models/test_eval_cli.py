"""`fastt2i eval` with reference sources over the tiny emoji fixture, and the stream helpers behind it."""

from __future__ import annotations

import json

import pytest
import torch

from fastt2i.cli import main
from fastt2i.data.captions import field_by_key
from fastt2i.metrics.sources import blur, cycled, reference_batches


def batches(n=10, bs=4):
    def fn():
        for i in range(0, n, bs):
            k = min(bs, n - i)
            yield {"image": torch.full((k, 3, 8, 8), float(i)), "caption": [f"c{i + j}" for j in range(k)]}
    return fn


def test_cycled_repeats_to_exactly_num_in_fixed_batches():
    out = list(cycled(batches(10, 4), 23, 5))
    assert [len(b["caption"]) for b in out] == [5, 5, 5, 5, 3]
    caps = [c for b in out for c in b["caption"]]
    assert caps[:10] == [f"c{i}" for i in range(10)] and caps[10:20] == caps[:10]


def test_shuffled_reference_never_keeps_an_images_own_caption():
    own = [c for b in batches(10, 4)() for c in b["caption"]]
    got = [c for b in reference_batches("shuffled", batches(10, 4), 10, 3) for c in b["caption"]]
    assert sorted(got) == sorted(own) and all(a != b for a, b in zip(got, own))


def test_blur_and_noise_references():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    b = blur(x)
    assert b.shape == x.shape and (b - x).abs().mean() > 0.1
    smooth = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    assert (blur(smooth) - smooth)[..., 8:-8].abs().max() < 0.02  # a linear ramp survives (away from the border)
    noise = next(reference_batches("noise", batches(4, 4), 4, 4))["image"]
    assert noise.std() > 0.5 and noise.min() >= -1 and noise.max() <= 1


def test_eval_cli_orders_references_and_appends_jsonl(emoji_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    common = ["--data", str(emoji_npz), "--resolution", "16", "--prompt-split", "all", "--real-split", "all",
              "--num", "24", "--batch-size", "8", "--run-dir", str(tmp_path / "run")]
    results = {}
    for kind in ["data", "noise", "shuffled"]:
        assert main(["eval", "--model", f"reference:{kind}", "--metrics", "fd_emojinet,clipscore_emojiclip",
                     *common]) == 0
        out = dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line)
        results[kind] = {k.rsplit("_", 1)[0]: float(v) for k, v in out.items()}
    assert results["data"]["fd_emojinet"] < 1e-6 < results["noise"]["fd_emojinet"]  # same images: FD 0
    assert results["shuffled"]["fd_emojinet"] < 1e-6
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["metric"] for r in records} == {"fd_emojinet_24", "clipscore_emojiclip_24"} and len(records) == 6
    assert all(r["num_samples"] == 24 and r["seconds"] >= 0 for r in records)


def test_eval_cli_clear_errors(emoji_npz, tmp_path, capsys):
    assert main(["eval", "--model", "reference:sharp", "--data", str(emoji_npz), "--metrics", "fd_emojinet",
                 "--num", "4", "--resolution", "16"]) == 2
    assert "unknown reference 'sharp'" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path), "--data", str(emoji_npz), "--metrics", "fd_emojinet"]) == 2
    assert "not a fastt2i export" in capsys.readouterr().err
    assert main(["eval", "--model", "reference:data", "--data", str(emoji_npz), "--metrics", "fid_nothing"]) == 2


class SeedPainter(torch.nn.Module):
    """A stand-in generator: image value = its seed / 100, so the test can see which seed made which image."""

    def generate(self, prompts, seeds):
        assert len(prompts) == len(seeds)
        return torch.stack([torch.full((3, 16, 16), s / 100.0) for s in seeds])


def test_trainers_evaluate_a_generator_object_with_seed_per_image(emoji_npz, tmp_path, monkeypatch):
    from fastt2i.evaluation import evaluate_source
    from fastt2i.metrics.sources import model_batches

    got = [b["image"][:, 0, 0, 0] for b in model_batches(SeedPainter().generate, lambda: cycled(batches(10, 4), 10, 4), 10,
                                                             3, seed=5)]
    assert torch.allclose(torch.cat(got), torch.arange(5, 15) / 100.0)
    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "cache"))
    res = evaluate_source(SeedPainter(), str(emoji_npz), metrics="fd_emojinet", num=12, batch_size=5,
                          resolution=16, prompt_split="all", real_split="all", run_dir=tmp_path, step=7, kimg=0.5,
                          progress=False)
    assert list(res) == ["fd_emojinet_12"] and res["fd_emojinet_12"] > 0
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["step"] == 7 and rec["kimg"] == 0.5 and rec["model"] == "SeedPainter"


# ------------------------------------------------------------------------------ prompt-following (subacc ...)
def _cli_results(capsys) -> dict[str, str]:
    return dict(line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line)


def test_subacc_and_styleacc_match_a_hand_computation(emoji_npz, tmp_path, monkeypatch, capsys):
    """reference:data scored by emoji-net's heads against each sample's own subcategory and its caption's style."""
    import numpy as np

    from fastt2i.metrics import EmojiNetFeatures
    from fastt2i.metrics.sources import split_samples

    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "--model", "reference:data", "--data", str(emoji_npz), "--resolution", "16",
                 "--prompt-split", "all", "--real-split", "all", "--num", "24", "--batch-size", "8",
                 "--metrics", "subacc_emojinet,styleacc_emojinet", "--run-dir", str(tmp_path / "run")]) == 0
    got = {k: float(v) for k, v in _cli_results(capsys).items()}
    net = EmojiNetFeatures()
    z = np.load(emoji_npz)
    sub_of = dict(zip(z["captions"].tolist(), z["subcategories"].tolist()))  # same caption, same subcategory
    b = next(split_samples(str(emoji_npz), "all", 16, batch_size=24))
    pred = net.predict(net(b["image"]))
    want_sub = np.mean([p == sub_of[c] for p, c in zip(pred["subcategory"], b["caption"])])
    want_sty = np.mean([p == c.rsplit(", ", 1)[1].split()[0] for p, c in zip(pred["style"], b["caption"])])
    assert got["subacc_emojinet_24"] == pytest.approx(want_sub)
    assert got["styleacc_emojinet_24"] == pytest.approx(want_sty)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["num_scored"] for r in records} == {24} and {r["prompt_form"] for r in records} == {"full"}


def test_short_prompts_have_no_style_to_score(emoji_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "--model", "reference:data", "--data", str(emoji_npz), "--resolution", "16",
                 "--prompt-split", "all", "--real-split", "all", "--num", "24", "--prompts", "short",
                 "--metrics", "styleacc_emojinet,subacc_emojinet"]) == 0
    got = _cli_results(capsys)
    assert got["styleacc_emojinet_24"].startswith("n/a") and 0 <= float(got["subacc_emojinet_24"]) <= 1


def test_shuffled_reference_moves_labels_with_their_captions():
    def fn():
        yield {"image": torch.zeros(6, 3, 4, 4), "caption": [f"c{i}" for i in range(6)],
               "label": [f"l{i}" for i in range(6)]}
    b = next(reference_batches("shuffled", fn, 6, 6))
    assert [c[1:] for c in b["caption"]] == [lab[1:] for lab in b["label"]]
    assert b["caption"] != [f"c{i}" for i in range(6)]


def test_subacc_without_a_label_field_is_a_clear_error(emoji_npz, tmp_path, monkeypatch, capsys):
    import numpy as np

    from fastt2i.errors import DataError

    z = dict(np.load(emoji_npz))
    del z["subcategories"]
    bare = tmp_path / "bare.npz"
    np.savez(bare, **z)
    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "cache"))
    argv = ["eval", "--model", "reference:data", "--data", str(bare), "--resolution", "16", "--prompt-split",
            "all", "--real-split", "all", "--num", "8", "--metrics", "subacc_emojinet"]
    assert main(argv) != 0
    assert "per-sample labels need a field 'subcategories' (subacc: --label-field" in capsys.readouterr().err
    with pytest.raises(DataError, match="no caption key 'subcategories'"):
        field_by_key(str(bare), "all", "subcategories")


def test_stylecover_of_the_data_and_of_a_generator(emoji_npz, tmp_path, monkeypatch, capsys):
    """The data's answer: each of the fixture's 7 names (6 emoji and a skin tone) exists in 3 styles (1.0). A fake
    generator whose seeds change the style only for "red heart" covers 1 of the 7."""
    from fastt2i.evaluation import style_names, stylecover

    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "--model", "reference:data", "--data", str(emoji_npz), "--prompt-split", "all",
                 "--real-split", "all", "--num", "24", "--metrics", "stylecover_emojinet"]) == 0
    assert float(_cli_results(capsys)["stylecover_emojinet_7"]) == 1.0
    names = style_names(str(emoji_npz), "all")
    assert len(names) == 7 and names["red heart"] == {"google", "openmoji", "twitter"}

    class Fake(torch.nn.Module):
        def forward(self, images):
            return images.mean(dim=(1, 2, 3))[:, None]  # [N,1]

        def predict(self, feats):
            return {"style": ["google" if f > 0 else "twitter" for f in feats[:, 0].tolist()]}

    def generate(prompts, seeds):
        return torch.stack([torch.full((3, 4, 4), 1.0 if p == "red heart" and s % 2 else -1.0)
                            for p, s in zip(prompts, seeds)])

    value, n = stylecover(generate, Fake(), str(emoji_npz), prompt_split="all", batch_size=5)
    assert (n, value) == (7, 1 / 7)

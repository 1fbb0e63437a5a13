"""StyleGAN-T trainer: CLI run, resume, export; frozen backbone; DiffAugment on real and fake; blur fade; the three
modes (full, text-encoder, grow); CLIP guidance; bf16; the presets' dry runs."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from fastt2i.cli import main
from fastt2i.errors import ConfigError
from fastt2i.inference import load_pipeline
from fastt2i.inference.stylegan_t import StyleGANTPipeline
from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig
from fastt2i.models.stylegan_t import StyleGANTGenerator
from fastt2i.models.stylegan_t.discriminator import blur
from fastt2i.training import stylegan_t as sgt
from fastt2i.training.presets import families
from fastt2i.training.stylegan_t import StyleGANTRunConfig, StyleGANTTrainer, blur_sigma

PRESETS = families()["stylegan-t"].presets


def tiny(tmp_path, name: str = "run", **kw) -> StyleGANTRunConfig:
    cfg = PRESETS["tiny"]()
    train = dataclasses.replace(cfg.train, run_dir=str(tmp_path / name), **kw.pop("train", {}))
    return dataclasses.replace(cfg, train=train, **kw)


def built(cfg: StyleGANTRunConfig) -> StyleGANTTrainer:
    torch.manual_seed(0)
    trainer = StyleGANTTrainer(cfg, tensorboard=False, progress=False)
    trainer.setup()
    return trainer


def batch(n: int = 8, res: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, res, res, generator=g) * 2 - 1, "caption": [f"toy image {i}" for i in range(n)]}


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names whose tensors differ (or are missing) between two snapshots."""
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k]))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    """A 16-px emoji-clip-like export whose text side is t5-tiny-random (32-d), for CLIP guidance."""
    torch.manual_seed(0)
    model = EmojiCLIP(EmojiCLIPConfig(resolution=16, channels=(8, 16), blocks=1, text_encoder="t5-tiny-random",
                                      embed_dim=32))
    path = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(path, text_encoder="t5-tiny-random")
    return str(path)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, npz_data):
    """A finished 2-step tiny run (state + export), the start of the text-encoder and grow modes."""
    root = tmp_path_factory.mktemp("source")
    cfg = tiny(root, "src", train={"data": str(npz_data), "kimg": 0.016, "sample_kimg": 0})
    assert StyleGANTTrainer(cfg, tensorboard=False, progress=False).run().finished
    return root / "src"


# ------------------------------------------------------------------------------------------------ full mode
def test_cli_tiny_run_resume_and_export(tmp_path, npz_data):
    run = tmp_path / "cli"
    argv = ["train", "stylegan-t", "--preset", "tiny", "--data", str(npz_data), "--run-dir", str(run), "--no-progress"]
    assert main([*argv, "--kimg", "0.016"]) == 0  # 2 steps, then resumed to 4
    assert main(argv) == 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    losses = [r for r in rows if "loss/g_adv" in r]
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    for r in losses:
        assert {"loss/d_hinge", "loss/g_adv", "logits/real", "logits/fake"} <= set(r)
        assert all(math.isfinite(r[k]) for k in r if k.startswith(("loss/", "logits/")))
    saved = json.loads((run / "config.json").read_text())
    assert saved["discriminator"]["backbone"] == "dino-tiny-random"
    G = StyleGANTGenerator.from_pretrained(run / "export")
    assert G.config == PRESETS["tiny"]().generator and float(G.w_avg.abs().sum()) > 0
    meta = json.loads((run / "export" / "config.json").read_text())
    assert meta["class"] == "stylegan-t-generator" and meta["text_encoder"] == "t5-tiny-random"
    pipe = load_pipeline(run)
    assert isinstance(pipe, StyleGANTPipeline) and pipe.generate(["a cat"], [0]).shape == (1, 3, 16, 16)
    # `fastt2i export` rebuilds the same EMA generator from the newest state
    assert main(["export", "stylegan-t", "--run-dir", str(run), "--out", str(tmp_path / "exp")]) == 0
    G2 = StyleGANTGenerator.from_pretrained(tmp_path / "exp")
    assert same(snapshot(G), snapshot(G2)) == []


def test_exact_resume_equals_uninterrupted(tmp_path, npz_data):
    full = tiny(tmp_path, "full", train={"data": str(npz_data), "sample_kimg": 0})
    StyleGANTTrainer(full, tensorboard=False, progress=False).run()
    half = tiny(tmp_path, "split", train={"data": str(npz_data), "sample_kimg": 0, "kimg": 0.016})
    assert StyleGANTTrainer(half, tensorboard=False, progress=False).run().step == 2
    rest = dataclasses.replace(half, train=dataclasses.replace(half.train, kimg=0.032))
    assert StyleGANTTrainer(rest, tensorboard=False, progress=False).run().step == 4
    a = torch.load(tmp_path / "full" / "state" / "state-00000004.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "state" / "state-00000004.pt", weights_only=True)
    assert same(a["ema"]["G"], b["ema"]["G"]) == [] and same(a["trainer"]["D"], b["trainer"]["D"]) == []


def test_backbone_is_bit_identical_and_each_step_trains_only_its_network(tmp_path):
    t = built(tiny(tmp_path))
    G, D = t.G, t.D
    backbone = snapshot(D.backbone)
    assert not any(p.requires_grad for p in D.backbone.parameters())
    opt_ids = {id(p) for g in t.opt_D.param_groups for p in g["params"]}
    assert not any(id(p) in opt_ids for p in D.backbone.parameters()) and opt_ids == {id(p) for p in D.parameters()}
    b = batch()
    text = t.text(b["caption"])
    g0, d0 = snapshot(G), snapshot(D)
    t.d_step(b["image"], text)
    assert same(g0, snapshot(G)) == []  # incl. w_avg
    assert same(d0, snapshot(D)) and all(p.grad is None for p in G.parameters())
    d1 = snapshot(D)
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    t.g_step(b["caption"], text)
    assert same(d1, snapshot(D)) == [] and all(p.grad is None for p in D.parameters())
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)
    assert same(backbone, snapshot(D.backbone)) == []
    assert not any(p.grad is not None for p in D.backbone.parameters())
    assert float(G.w_avg.abs().sum()) > 0  # the G step tracks w_avg


def test_diffaugment_sees_real_and_fake_and_passes_gradients_to_g(tmp_path, monkeypatch):
    calls = []
    real_aug = sgt.diff_augment

    def spy(x, policy, **kw):
        calls.append((x.detach().clone(), x.requires_grad, policy))
        y = real_aug(x, policy, **kw)
        assert y.requires_grad == x.requires_grad  # differentiable
        return y

    monkeypatch.setattr(sgt, "diff_augment", spy)
    t = built(tiny(tmp_path))
    b = batch()
    text = t.text(b["caption"])
    sigma = t.blur_sigma
    assert sigma == pytest.approx(2.0)  # at 0 images: the initial blur
    t.d_step(b["image"], text)
    assert len(calls) == 2 and all(p == "color,translation,cutout" for _, _, p in calls)
    (x_real, _, _), (x_fake, grad_fake, _) = calls
    # the first is the (blurred) real batch, the second the generated one
    torch.testing.assert_close(x_real, blur(b["image"], sigma))
    assert x_fake.shape == x_real.shape and not torch.allclose(x_fake, x_real) and not grad_fake
    calls.clear()
    t.G.zero_grad(set_to_none=True)
    t.g_step(b["caption"], text)
    assert len(calls) == 1 and calls[0][1]  # G's images, with a graph back to G
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in t.G.synthesis.named_parameters()
               if n.endswith("torgb.bias"))
    # independent draws: the same images augmented twice differ
    x = b["image"]
    assert not torch.equal(real_aug(x, "color,translation,cutout"), real_aug(x, "color,translation,cutout"))
    # "" switches DiffAugment off; an unknown op is a config error
    t2 = built(tiny(tmp_path, "noaug", diffaug_policy=""))
    calls.clear()
    t2.d_step(b["image"], t2.text(b["caption"]))
    assert calls == []
    with pytest.raises(ConfigError, match="unknown DiffAugment policy"):
        tiny(tmp_path, diffaug_policy="color,flip")


def test_blur_fades_linearly_to_zero(tmp_path, monkeypatch):
    assert blur_sigma(0, 2.0, 10) == 2.0
    assert blur_sigma(5000, 2.0, 10) == pytest.approx(1.0)
    assert blur_sigma(10_000, 2.0, 10) == 0.0 and blur_sigma(20_000, 2.0, 10) == 0.0
    assert blur_sigma(0, 2.0, 0) == 0.0  # fade 0 = no blur
    t = built(tiny(tmp_path))  # blur_fade_kimg = 0.016: 16 images
    seen = []
    prepare = t.D.prepare
    monkeypatch.setattr(t.D, "prepare", lambda x, s=0.0, *a, **kw: seen.append(s) or prepare(x, s, *a, **kw))
    b = batch()
    for nimg, want in [(0, 2.0), (8, 1.0), (16, 0.0), (24, 0.0)]:
        t.cur_nimg = nimg
        seen.clear()
        t.train_step(b, 0)
        assert seen and all(s == pytest.approx(want) for s in seen), (nimg, seen)  # D and G steps alike


def test_clip_guidance_term_and_its_text_cache(tmp_path, tiny_clip, monkeypatch):
    t = built(tiny(tmp_path, clip_model=tiny_clip, clip_guidance_weight=0.5))
    encoded = []
    encode_text = t.clip.encode_text
    monkeypatch.setattr(t.clip, "encode_text", lambda texts: encoded.append(list(texts)) or encode_text(texts))
    for step in range(3):
        out = t.train_step(batch(seed=step), step)
        assert set(out) == {"loss/d_hinge", "logits/real", "logits/fake", "loss/g_adv", "loss/g_clip"}
        assert all(math.isfinite(float(v)) for v in out.values()) and float(out["loss/g_clip"]) > 0
    assert len(encoded) == 1 and len(encoded[0]) == 8  # each caption encoded once
    with pytest.raises(ConfigError, match="emoji-net"):
        sgt.load_clip_model("emoji-net")


def test_bf16_mixed_precision_step(tmp_path):
    t = built(tiny(tmp_path, train={"mixed_precision": "bf16"}))
    out = t.train_step(batch(), 0)
    assert all(math.isfinite(float(v)) for v in out.values())
    assert all(p.dtype == torch.float32 for p in t.G.parameters())


def test_sample_grid_and_evaluate(tmp_path, npz_data):
    t = built(tiny(tmp_path, eval_metrics="fd_emojinet", eval_num=16,
                   train={"data": str(npz_data), "val_fraction": 0.2}))
    grid = t.sample_grid()
    assert grid.shape == (4, 3, 16, 16) and torch.equal(grid, t.sample_grid())
    result = t.evaluate()
    assert set(result) == {"fd_emojinet_16"} and math.isfinite(result["fd_emojinet_16"])


# ------------------------------------------------------------------------------------------------ text-encoder mode
def test_text_encoder_mode_trains_only_the_text_encoder(tmp_path, source_run):
    cfg = tiny(tmp_path, "te", mode="text-encoder", grow_from=str(source_run), text_lr=1e-3)
    t = built(cfg)
    src = torch.load(sorted((source_run / "state").glob("*.pt"))[-1], weights_only=True)
    assert same(snapshot(t.G), src["ema"]["G"]) == []  # G starts as the source's EMA generator ...
    assert same(snapshot(t.D), src["trainer"]["D"]) == []  # ... and D as its discriminator
    g0, d0, e0, bb = snapshot(t.G), snapshot(t.D), snapshot(t.text_encoder), snapshot(t.D.backbone)
    frozen0 = {k: v.clone() for k, v in t.text.encoder().state_dict().items()}
    opt = {id(p) for g in t.opt_G.param_groups for p in g["params"]}
    assert opt == {id(p) for p in t.text_encoder.parameters()}
    for step in range(2):
        out = t.train_step(batch(seed=step), step)
        assert set(out) == {"loss/g_adv"} and math.isfinite(float(out["loss/g_adv"]))
    assert same(g0, snapshot(t.G)) == [] and same(d0, snapshot(t.D)) == [] and same(bb, snapshot(t.D.backbone)) == []
    assert same(e0, snapshot(t.text_encoder))  # the encoder moved ...
    assert same(frozen0, t.text.encoder().state_dict()) == []  # ... the frozen one (D's condition) did not
    # the official variant also keeps training D's heads
    t2 = built(dataclasses.replace(cfg, text_encoder_d_steps=True,
                                   train=dataclasses.replace(cfg.train, run_dir=str(tmp_path / "te2"))))
    d0 = snapshot(t2.D)
    assert "loss/d_hinge" in t2.train_step(batch(), 0)
    assert same(d0, snapshot(t2.D)) and same(g0, snapshot(t2.G)) == []


def test_text_encoder_mode_exports_the_fine_tuned_encoder(tmp_path, source_run, npz_data):
    cfg = tiny(tmp_path, "te", mode="text-encoder", grow_from=str(source_run), text_lr=1e-3,
               train={"data": str(npz_data), "kimg": 0.008, "ema_kimg": 0, "sample_kimg": 0})
    assert StyleGANTTrainer(cfg, tensorboard=False, progress=False).run().step == 1
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, kimg=0.016))
    t = StyleGANTTrainer(cfg, tensorboard=False, progress=False)  # resumes the fine-tuned encoder and its EMA
    result = t.run()
    assert result.finished and result.step == 2
    export = tmp_path / "te" / "export"
    meta = json.loads((export / "config.json").read_text())
    assert meta["text_encoder"] == "t5:./text_encoder" and (export / "text_encoder" / "config.json").is_file()
    pipe = load_pipeline(tmp_path / "te")  # `fastt2i generate` loads the same: the encoder inside the export
    tuned = dict(t.text_ema.named_parameters())
    assert all(torch.equal(p, tuned[n]) for n, p in pipe.text_encoder.named_parameters())
    stock = dict(t.text.encoder().named_parameters())
    assert any(not torch.equal(p, stock[n]) for n, p in pipe.text_encoder.named_parameters())
    x = pipe.generate(["a cat"], [0])
    torch.testing.assert_close(x, t.generate(["a cat"], [0]).clamp(-1, 1), atol=1e-4, rtol=0)


def test_modes_need_a_fitting_source_run(tmp_path, source_run):
    with pytest.raises(ConfigError, match="grow_from"):
        built(tiny(tmp_path, mode="text-encoder"))
    base = tiny(tmp_path, mode="text-encoder", grow_from=str(source_run))
    other = dataclasses.replace(base, generator=dataclasses.replace(base.generator, normalize_text=False))
    with pytest.raises(ConfigError, match="normalize_text: True there, False here"):
        built(other)
    with pytest.raises(ConfigError, match="only channels, res_blocks, resolution may change"):
        built(dataclasses.replace(other, mode="grow"))
    with pytest.raises(ConfigError, match="neither a training state nor an export"):
        built(tiny(tmp_path, mode="grow", grow_from=str(tmp_path)))
    with pytest.raises(ConfigError, match="mode must be one of"):
        tiny(tmp_path, mode="freeze64")


# ------------------------------------------------------------------------------------------------ grow mode
def test_grow_keeps_the_low_resolution_blocks_and_trains_the_new_ones(tmp_path, source_run):
    base = tiny(tmp_path, "grow")
    g = dataclasses.replace(base.generator, resolution=32, channels=(64, 32, 16))
    cfg = dataclasses.replace(base, generator=g, mode="grow", grow_from=str(source_run),
                              train=dataclasses.replace(base.train, resolution=32))
    t = built(cfg)
    src = torch.load(sorted((source_run / "state").glob("*.pt"))[-1], weights_only=True)["ema"]["G"]
    start = snapshot(t.G)
    assert all(torch.equal(start[k], v) for k, v in src.items())  # every shared weight copied
    new = sorted(k for k in start if k not in src)
    assert new and all(k.startswith("synthesis.blocks.2.") for k in new)
    for step in range(2):
        out = t.train_step(batch(res=32, seed=step), step)
        assert all(math.isfinite(float(v)) for v in out.values())
    end = snapshot(t.G)
    changed = same(start, end)
    kept = [k for k in src if ".torgb." not in k]
    assert kept and not [k for k in kept if k in changed]  # low-res blocks, mapping, w_avg, noise: bit-identical
    assert any(k.startswith("synthesis.blocks.2.") for k in changed)  # the new block trains ...
    assert any(".torgb." in k and not k.startswith("synthesis.blocks.2.") for k in changed)  # ... and every toRGB
    trainable = {id(p) for p in t._g_params}
    assert {id(p) for g in t.opt_G.param_groups for p in g["params"]} == trainable
    # an export (no training state) also works as the source: G's shared weights from it, a new D
    t2 = built(dataclasses.replace(cfg, grow_from=str(source_run / "export"),
                                   train=dataclasses.replace(cfg.train, run_dir=str(tmp_path / "grow-export"))))
    exported = StyleGANTGenerator.from_pretrained(source_run / "export").state_dict()
    assert t2.source.D is None and same(exported, {k: v for k, v in snapshot(t2.G).items() if k in exported}) == []
    # a generator that adds nothing is refused
    with pytest.raises(ConfigError, match="adds no block"):
        built(tiny(tmp_path, "grow2", mode="grow", grow_from=str(source_run)))


# ------------------------------------------------------------------------------------------------ presets
def test_presets_dry_run_print_the_backbone(capsys):
    assert main(["train", "stylegan-t", "--preset", "emoji64", "--data", "x.npz", "--run-dir", "d", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["discriminator"]["backbone"] == "emoji-clip" and cfg["clip_model"] == "emoji-clip"
    assert cfg["train"]["batch_size"] == 32 and cfg["train"]["data"] == "x.npz" and cfg["mode"] == "full"
    assert cfg["clip_guidance_weight"] > 0 and cfg["generator"]["text_encoder"] == "minilm"
    argv = ["train", "stylegan-t", "--preset", "paper", "--mode", "text-encoder", "--set", "grow_from=runs/x",
            "--set", "discriminator.backbone=dino:/models/dino-vits16", "--dry-run"]
    assert main(argv) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["mode"] == "text-encoder" and cfg["discriminator"]["backbone"] == "dino:/models/dino-vits16"
    assert cfg["generator"]["resolution"] == 64 and cfg["generator"]["text_encoder"] == "clip"
    assert main(["train", "stylegan-t", "--preset", "tiny", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["discriminator"]["backbone"] == "dino-tiny-random"
    assert main(["train", "stylegan-t", "--preset", "emoji64", "--set", "discriminator.backbone=emoji-net",
                 "--dry-run"]) == 2
    assert "emoji-net" in capsys.readouterr().err


RANK_SCRIPT = """
import dataclasses, hashlib, json, sys
from fastt2i.training.presets import families
from fastt2i.training.stylegan_t import StyleGANTTrainer
cfg = families()["stylegan-t"].presets["tiny"]()
cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=sys.argv[1], data=sys.argv[2],
                                                         sample_kimg=0))
t = StyleGANTTrainer(cfg, tensorboard=False, progress=False)
r = t.run()
def digest(m):
    h = hashlib.sha1()
    for k, v in sorted(m.state_dict().items()):
        h.update(k.encode()); h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()
out = {"rank": t.rank, "world": t.world_size, "finished": r.finished, "G": digest(t.G), "D": digest(t.D),
       "ema": digest(t.G_ema)}
open(f"{sys.argv[1]}/rank{t.rank}.json", "w").write(json.dumps(out))
"""


@pytest.mark.slow
def test_two_process_ranks_stay_identical(tmp_path, npz_data):
    import subprocess
    import sys

    from toy_runner import toy_env

    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(run), str(npz_data)]
    proc = subprocess.run(cmd, env=toy_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["finished"] and r1["finished"]
    assert (r0["G"], r0["D"], r0["ema"]) == (r1["G"], r1["D"], r1["ema"]), "ranks diverged: gradients not averaged"


def test_d_condition_is_g_text_vector_with_text_scale(tmp_path):
    """D is conditioned on exactly G's text part of w, normalised and scaled (`generator.text_scale`)."""
    base = tiny(tmp_path)
    cfg = dataclasses.replace(base, generator=dataclasses.replace(base.generator, text_scale=4.0))
    trainer = built(cfg)
    text = trainer.text(["a cat", "a dog"])
    c = trainer.d_condition(text)
    torch.testing.assert_close(c, trainer.G.text_condition(*text)[2])
    torch.testing.assert_close(c.norm(dim=-1), torch.full((2,), 4.0))


def test_mode_seeking_pairs_captions_and_adds_its_term(tmp_path, monkeypatch):
    t = built(tiny(tmp_path, mode_seeking_weight=1.0))
    seen = []
    judge = t.judge
    monkeypatch.setattr(t, "judge", lambda images, c: seen.append(c.detach().clone()) or judge(images, c))
    out = t.train_step(batch(), 0)
    assert {"loss/g_adv", "loss/g_ms"} <= set(out) and all(math.isfinite(float(v)) for v in out.values())
    c = seen[-1]  # the G step's D condition: rows 4..7 repeat rows 0..3
    assert torch.equal(c[4:], c[:4]) and not torch.equal(c[0], c[1])
    assert "loss/g_ms" not in built(tiny(tmp_path, "off")).train_step(batch(), 0)  # default: the paper, off
    with pytest.raises(ConfigError, match="full training only"):
        tiny(tmp_path, "te", mode="text-encoder", mode_seeking_weight=1.0)


def test_mode_seeking_in_clip_space_loads_the_clip_model_alone(tmp_path, tiny_clip):
    t = built(tiny(tmp_path, clip_model=tiny_clip, mode_seeking_weight=0.5, mode_seeking_space="clip"))
    assert t.clip is not None  # loaded for the distance, with CLIP guidance off
    out = t.train_step(batch(), 0)
    assert "loss/g_ms" in out and "loss/g_clip" not in out and math.isfinite(float(out["loss/g_ms"]))

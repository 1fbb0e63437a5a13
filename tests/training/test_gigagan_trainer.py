"""GigaGAN trainer: CLI run end to end, exact resume, named finite losses, NaN stop, matching spy, lazy R1, presets."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from fastt2i.cli import main
from fastt2i.training.presets import families
from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig
from fastt2i.models.gigagan import GigaGANGenerator
from fastt2i.training import NonFiniteLossError
from fastt2i.training import gigagan as gg
from fastt2i.training.gigagan import GigaGANRunConfig, GigaGANTrainer

PRESETS = families()["gigagan"].presets


def tiny(tmp_path, name: str = "run", **kw) -> GigaGANRunConfig:
    cfg = PRESETS["tiny"]()
    train = dataclasses.replace(cfg.train, run_dir=str(tmp_path / name), **kw.pop("train", {}))
    return dataclasses.replace(cfg, train=train, **kw)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    """A 16-px emoji-clip-like export whose text side is t5-tiny-random (32-d), for the CLIP / vision-aided terms."""
    torch.manual_seed(0)
    model = EmojiCLIP(EmojiCLIPConfig(resolution=16, channels=(8, 16), blocks=1, text_encoder="t5-tiny-random",
                                      embed_dim=32))
    path = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(path, text_encoder="t5-tiny-random")
    return str(path)


def built(cfg: GigaGANRunConfig) -> GigaGANTrainer:
    torch.manual_seed(0)
    trainer = GigaGANTrainer(cfg, tensorboard=False, progress=False)
    trainer.setup()
    return trainer


def batch(n: int = 8, res: int = 16, captions: list[str] | None = None, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, res, res, generator=g) * 2 - 1,
            "caption": captions or [f"toy image {i}" for i in range(n)]}


def test_cli_tiny_run_exports_and_samples(tmp_path, npz_data):
    run = tmp_path / "cli"
    rc = main(["train", "gigagan", "--preset", "tiny", "--data", str(npz_data), "--run-dir", str(run), "--no-progress"])
    assert rc == 0
    G = GigaGANGenerator.from_pretrained(run / "export")
    assert G.config == PRESETS["tiny"]().generator
    assert json.loads((run / "export" / "config.json").read_text())["text_encoder"] == "t5-tiny-random"
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["samples-000000000.png",
                                                                      "samples-000000032.png"]
    assert not (run / "metrics.jsonl").exists()  # eval_kimg = 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    losses = [r for r in rows if "loss/g_adv" in r]
    assert losses and {"loss/d_real", "loss/d_fake", "loss/d_match", "loss/r1", "loss/g_adv"} <= set(losses[-1])
    # the w average moved away from its zero init and was exported with the EMA generator
    assert float(G.w_avg.abs().sum()) > 0
    # `fastt2i export` rebuilds the same EMA generator from the run's newest training state, leaving the run as it was
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert main(["export", "gigagan", "--run-dir", str(run), "--out", str(tmp_path / "exp")]) == 0
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    G2 = GigaGANGenerator.from_pretrained(tmp_path / "exp")
    assert G2.config == G.config
    for (k, a), (_, b) in zip(G.state_dict().items(), G2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert main(["export", "gigagan", "--run-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2


def test_exact_resume_equals_uninterrupted(tmp_path, npz_data):
    full = tiny(tmp_path, "full", train={"data": str(npz_data)})
    GigaGANTrainer(full, tensorboard=False, progress=False).run()
    half = tiny(tmp_path, "split", train={"data": str(npz_data), "kimg": 0.016})
    r1 = GigaGANTrainer(half, tensorboard=False, progress=False).run()
    assert r1.step == 2
    rest = dataclasses.replace(half, train=dataclasses.replace(half.train, kimg=0.032))
    t = GigaGANTrainer(rest, tensorboard=False, progress=False)
    r2 = t.run()
    assert r2.finished and r2.step == 4
    a = torch.load(tmp_path / "full" / "state" / "state-00000004.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "state" / "state-00000004.pt", weights_only=True)
    assert a["ema"]["G"].keys() == b["ema"]["G"].keys()
    for k in a["ema"]["G"]:
        assert torch.equal(a["ema"]["G"][k], b["ema"]["G"][k]), k
    for k in a["trainer"]["D"]:
        assert torch.equal(a["trainer"]["D"][k], b["trainer"]["D"][k]), k


def test_every_loss_term_named_and_finite(tmp_path, tiny_clip):
    cfg = tiny(tmp_path, clip_model=tiny_clip, clip_loss_weight=0.5, vision_aided_weight=0.5)
    t = built(cfg)
    assert t.VA is not None and t.clip is not None
    # the frozen CLIP backbone is outside every optimizer; only the vision-aided heads are trained
    opt_ids = {id(p) for g in t.opt_D.param_groups for p in g["params"]}
    assert not any(id(p) in opt_ids for p in t.clip.parameters())
    assert all(id(p) in opt_ids for p in t.VA.parameters())
    for step in range(10):  # gigagan-pytorch 0.3.0 turned to NaN within a few text-conditioned steps
        out = t.train_step(batch(seed=step), step)
        assert set(out) == {"loss/d_real", "loss/d_fake", "loss/d_match", "loss/r1", "loss/d_vision", "loss/g_adv",
                            "loss/g_clip", "loss/g_vision"}
        assert all(math.isfinite(float(v)) for v in out.values()), out
        assert float(out["loss/g_clip"]) > 0 and float(out["loss/d_match"]) > 0


def test_nan_in_a_loss_stops_naming_the_term(tmp_path, npz_data, monkeypatch):
    def nan_r1(real, logits):
        return r1_penalty(real, logits) * float("nan")

    r1_penalty = gg.r1_penalty
    monkeypatch.setattr(gg, "r1_penalty", nan_r1)
    cfg = tiny(tmp_path, train={"data": str(npz_data), "sample_kimg": 0})
    with pytest.raises(NonFiniteLossError, match=r"loss/r1=nan.*at step 0"):
        GigaGANTrainer(cfg, tensorboard=False, progress=False).run()
    assert not list((tmp_path / "run").glob("state/*.pt"))


def test_matching_term_gets_only_mismatched_pairs(tmp_path, monkeypatch):
    t = built(tiny(tmp_path))
    indices, text_calls, judged = [], [], []
    real_index = gg.try_mismatch_index

    def spy_index(*args, **kwargs):
        idx = real_index(*args, **kwargs)
        indices.append(idx)
        return idx

    monkeypatch.setattr(gg, "try_mismatch_index", spy_index)
    D = t.unwrap(t.D)
    descriptor, judge_many = D.text_descriptor, D.judge_many
    monkeypatch.setattr(D, "text_descriptor", lambda *text: text_calls.append(text[2]) or descriptor(*text))
    monkeypatch.setattr(D, "judge_many", lambda pyrs, ts: judged.append((len(pyrs), ts)) or judge_many(pyrs, ts))
    captions = ["a", "a", "b", "b", "c", "c", "d", "e"]  # duplicates must never count as mismatches
    for step in range(4):
        indices.clear(), text_calls.clear(), judged.clear()
        out = t.d_step(batch(captions=captions)["image"], captions, t.text(captions), step)
        assert len(indices) == 1 and indices[0] is not None
        index = indices[0]
        assert all(captions[int(j)] != captions[i] for i, j in enumerate(index)), index
        # D's text transformer ran once (R1 included: fp32 reuses the main pass); the mismatched t_D is that one
        # re-indexed, and D judged real and fake images under the matched and the mismatched t_D in one call (two on
        # R1 steps, where the real pass stays apart for the double backward)
        assert len(text_calls) == 1
        r1_step = step % t.config.r1_every == 0
        assert [n_sets for n_sets, _ in judged] == ([1, 1] if r1_step else [2])
        for _, descriptors in judged:
            assert len(descriptors) == 2 and torch.equal(descriptors[1], descriptors[0][index])
        assert float(out["loss/d_match"].detach()) > 0
    same = ["x"] * 8  # cannot be mismatched: skipped with a logged 0
    judged.clear()
    out = t.d_step(batch()["image"], same, t.text(same), 1)
    assert len(judged[0][1]) == 1 and float(out["loss/d_match"]) == 0.0
    t2 = built(tiny(tmp_path, "off", matching_aware=False))
    assert "loss/d_match" not in t2.d_step(batch()["image"], captions, t2.text(captions), 1)


def test_lazy_r1_every_k_steps(tmp_path, monkeypatch):
    steps_with_r1 = []
    real = gg.r1_penalty
    t = built(tiny(tmp_path, r1_every=3))
    monkeypatch.setattr(gg, "r1_penalty", lambda x, lg: steps_with_r1.append(t._cur) or real(x, lg))
    for step in range(7):
        t._cur = step
        t.train_step(batch(seed=step), step)
    assert steps_with_r1 == [0, 3, 6]
    assert t.opt_D.param_groups[0]["lr"] == pytest.approx(t.config.d_lr * 3 / 4)  # StyleGAN2 lazy-reg lr ratio


def test_d_and_g_steps_touch_only_their_network(tmp_path, tiny_clip):
    t = built(tiny(tmp_path, clip_model=tiny_clip, clip_loss_weight=0.5, vision_aided_weight=0.5))
    caps = [f"c{i}" for i in range(8)]
    b = batch(captions=caps)
    nets = {"G": t.unwrap(t.G), "D": t.unwrap(t.D), "VA": t.unwrap(t.VA)}

    def clear():
        for m in nets.values():
            m.zero_grad(set_to_none=True)

    def has_grad(m):
        return [n for n, p in m.named_parameters() if p.grad is not None]

    clear()
    g_before = {k: v.clone() for k, v in nets["G"].state_dict().items()}
    t.d_step(b["image"], caps, t.text(caps), 0)
    assert has_grad(nets["G"]) == [] and has_grad(nets["D"]) and has_grad(nets["VA"])
    assert all(torch.equal(g_before[k], v) for k, v in nets["G"].state_dict().items())  # incl. w_avg
    clear()
    d_before = {k: v.clone() for k, v in nets["D"].state_dict().items()}
    t.g_step(caps, t.text(caps))
    assert has_grad(nets["D"]) == [] and has_grad(nets["VA"]) == [] and has_grad(nets["G"])
    assert all(torch.equal(d_before[k], v) for k, v in nets["D"].state_dict().items())
    assert float(nets["G"].w_avg.abs().sum()) > 0  # the G step tracks w_avg


def test_attention_weight_decay_only_on_attention_projections(tmp_path):
    from fastt2i.nn.attention import attention_parameters

    t = built(tiny(tmp_path))
    decay = {id(p) for g in t.opt_G.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decay == {id(p) for p in attention_parameters(t.unwrap(t.G))} and decay


def test_sample_grid_is_fixed_prompts_by_seeds(tmp_path):
    t = built(tiny(tmp_path))
    grid = t.sample_grid()
    cfg = t.config
    assert grid.shape == (len(cfg.sample_prompts) * len(cfg.sample_seeds), 3, 16, 16)
    assert torch.equal(grid, t.sample_grid())  # deterministic (const noise, per-seed z)
    one = t.generate([cfg.sample_prompts[1]], [cfg.sample_seeds[1]]).clamp(-1, 1)
    # batch-independent up to fp32 rounding (oneDNN picks convolution kernels by batch size)
    torch.testing.assert_close(one[0], grid[len(cfg.sample_seeds) + 1], atol=1e-4, rtol=1e-4)


def test_ablation_presets_resolve_and_switch_components(capsys):
    rows = sorted(n for n in PRESETS if n.startswith("ablation-"))
    assert [r.split("-", 2)[2] for r in rows] == ["stylegan2", "attention", "matching-aware", "adaptive-kernels",
                                                  "depth", "clip-loss", "multiscale", "vision-aided"]
    cfgs = []
    for name in rows:
        assert main(["train", "gigagan", "--preset", name, "--dry-run"]) == 0
        cfgs.append(json.loads(capsys.readouterr().out))
    base = cfgs[0]
    g, d = base["generator"], base["discriminator"]
    assert not g["attention"] and not g["cross_attention"] and g["num_kernels"] == 1 and not g["kernels"]
    assert not g["multiscale"] and not d["multiscale"] and not base["matching_aware"]
    assert base["clip_loss_weight"] == 0 and base["vision_aided_weight"] == 0

    def changed(a, b):
        out = {f"{s}.{k}" for s in ("generator", "discriminator") for k in a[s] if a[s][k] != b[s][k]}
        out |= {k for k in a if not isinstance(a[k], dict) and a[k] != b[k]}
        return out - {"train"}

    steps = [changed(a, b) for a, b in zip(cfgs[:-1], cfgs[1:])]
    assert steps[0] == {"generator.attention", "generator.cross_attention", "generator.style_token"}
    assert steps[1] == {"matching_aware"}
    assert steps[2] == {"generator.kernels"}
    assert steps[3] == {"generator.blocks"}
    assert steps[4] == {"clip_loss_weight"}
    assert steps[5] == {"generator.multiscale", "discriminator.multiscale"}
    assert steps[6] == {"vision_aided_weight"}
    for name in ("tiny", "emoji64", "paper"):
        assert main(["train", "gigagan", "--preset", name, "--dry-run"]) == 0
        capsys.readouterr()


def test_ablation_baseline_builds_without_optional_parts(tmp_path):
    cfg = PRESETS["ablation-1-stylegan2"]()
    t = built(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=str(tmp_path / "a"))))
    assert t.VA is None and t.clip is None and len(t.unwrap(t.D).pairs) == 1


def test_config_errors_are_one_line(tmp_path):
    from fastt2i.errors import ConfigError

    cfg = PRESETS["tiny"]()
    with pytest.raises(ConfigError, match="text_encoder"):
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, text_encoder="minilm"))
    with pytest.raises(ConfigError, match="r1_every"):
        dataclasses.replace(cfg, r1_every=0)
    with pytest.raises(ConfigError, match="emoji-net"):
        gg.load_clip_model("emoji-net")


def test_single_scale_generator_against_multiscale_d(tmp_path):
    cfg = tiny(tmp_path)
    cfg = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, multiscale=False))
    t = built(cfg)
    seen = []
    D = t.unwrap(t.D)
    forward = D.forward
    D.forward = lambda pyr, *a: seen.append([tuple(x.shape[-2:]) for x in pyr]) or forward(pyr, *a)
    out = t.train_step(batch(), 1)
    assert all(math.isfinite(float(v)) for v in out.values())
    assert seen and all(s == [(16, 16), (8, 8), (4, 4)] for s in seen)  # G's image completed to D's 3 levels


def test_evaluate_scores_the_ema_generator(tmp_path, npz_data):
    cfg = tiny(tmp_path, eval_metrics="fd_emojinet", eval_num=16, train={"data": str(npz_data), "val_fraction": 0.2})
    result = built(cfg).evaluate()
    assert set(result) == {"fd_emojinet_16"} and math.isfinite(result["fd_emojinet_16"])


def test_text_encoder_width_mismatch_is_a_config_error(tmp_path):
    from fastt2i.errors import ConfigError

    cfg = tiny(tmp_path)
    g = dataclasses.replace(cfg.generator, text_encoder="clip-tiny-random")  # clip-tiny-random: pooled width 16
    d = dataclasses.replace(cfg.discriminator, text_encoder="clip-tiny-random")
    cfg = dataclasses.replace(cfg, generator=g, discriminator=d,
                              train=dataclasses.replace(cfg.train, text_encoder="clip-tiny-random"))
    t = built(cfg)
    with pytest.raises(ConfigError, match="width 32/16"):
        t.text(["a cat"])


RANK_SCRIPT = """
import dataclasses, hashlib, json, sys
import torch
from fastt2i.training.presets import families
from fastt2i.training.gigagan import GigaGANTrainer
cfg = families()["gigagan"].presets["tiny"]()
cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=sys.argv[1], data=sys.argv[2],
                                                         sample_kimg=0))
t = GigaGANTrainer(cfg, tensorboard=False, progress=False)
r = t.run()
def digest(m):
    h = hashlib.sha1()
    for k, v in sorted(m.state_dict().items()):
        h.update(k.encode()); h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()
def digest_p(m):
    return hashlib.sha1(b"".join(p.detach().float().numpy().tobytes() for p in m.parameters())).hexdigest()
out = {"rank": t.rank, "world": t.world_size, "finished": r.finished, "G": digest(t.G), "D": digest(t.D),
       "ema": digest(t.G_ema), "G_params": digest_p(t.G)}
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
    proc = subprocess.run(cmd, env=toy_env(), capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["finished"] and r1["finished"]
    assert (r0["G"], r0["D"], r0["ema"]) == (r1["G"], r1["D"], r1["ema"]), "ranks diverged: gradients not averaged"


def test_mode_seeking_pairs_captions_and_adds_its_term(tmp_path, monkeypatch):
    t = built(tiny(tmp_path, mode_seeking_weight=1.0))
    pooled = []
    synthesize = t.synthesize
    monkeypatch.setattr(t, "synthesize", lambda G, z, text, **kw: pooled.append(text[2].detach().clone())
                        or synthesize(G, z, text, **kw))
    out = t.train_step(batch(), 0)
    assert {"loss/g_adv", "loss/g_ms"} <= set(out) and all(math.isfinite(float(v)) for v in out.values())
    c = pooled[-1]  # the G step's text: rows 4..7 repeat rows 0..3
    assert torch.equal(c[4:], c[:4]) and not torch.equal(c[0], c[1])
    assert "loss/g_ms" not in built(tiny(tmp_path, "off")).train_step(batch(), 0)  # default: the paper, off

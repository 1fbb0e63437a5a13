"""fastt2i side by side with its peers on CPU: gigagan-pytorch 0.3.0 (GigaGAN), muse-maskgit-pytorch 0.3.5 (MaskGit).

    bash benchmarks/peers_setup.sh                                           # once: /tmp/fastt2i-peers-venv
    /tmp/fastt2i-peers-venv/bin/python benchmarks/peers.py --repeats 7 --out peers.md
    /tmp/fastt2i-peers-venv/bin/python benchmarks/peers.py --repeats 2 --cases gfwd1-e64,paella-train --no-memory

Runs in the peers' virtual environment (benchmarks/peers_setup.sh: both peers and fastt2i in one venv, torch==2.13.0,
torchvision / open_clip as import-time stand-ins). Neither peer's text model is used: both sides get the same
random per-word embeddings (each word a fixed N(0, 1) vector of the encoder's width, seeded by a hash of the word;
zero padding; pooled = the normalised mean), fed where the frozen encoder's output would enter — our models'
(tokens, mask, pooled) inputs, gigagan-pytorch's `OpenClipAdapter.embed_texts` (a subclass that skips open_clip)
and MaskGit's `transformer.encode_text` (T5 never loads).

The pairs (parameter counts are printed; matched within +-20%, but matched parameters are not matched FLOPs, so the
FLOPs of every case are printed too):
- GigaGAN G "emoji64": ours GIGAGAN_PRESETS["emoji64"] (1.5M) vs gigagan-pytorch `Generator(dim_capacity=3,
  dim_latent=64)`, 2 adaptive kernels, self+cross attention at 8 px (4 heads x 32, ff x2), text encoder width 128
  with 2 layers, style network 256 x 4 layers (as ours: w 256, 4 mapping layers, T 128 x 2 layers).
- GigaGAN G "8M": ours emoji64 with channels 256/256/128/64/32 (7.9M) vs `Generator(dim_capacity=10,
  dim_latent=256)`, otherwise as above.
- D (both G sizes): ours `gigagan_emoji64_discriminator()` (0.21M) vs `Discriminator(dim_capacity=3, dim_max=32)`,
  1 conv kernel, no trunk attention, its own text encoder of width 32 (1 layer), multi-scale inputs 32/16/8 px.
- Paella: ours PAELLA_PRESETS["emoji64"] (4.7M) vs `MaskGit(MaskGitTransformer(num_tokens=1024, seq_len=256,
  dim=256, depth=3, heads=4, dim_head=64))` over 16x16 tokens with 1,024 codes (text 384-d for both).

Cases (batch 32 unless named): G forward at batch 1 and 32 (no grad); G forward+backward (loss = sum of the mean of
every pyramid output); a full D+G training step with R1 (ours: r1_every=1, gamma 0.2) / GP (theirs:
`apply_gradient_penalty=True`, their gradient penalty on real and fake images) on and off — ours
`GigaGANTrainer.train_step` with matching-aware D and style mixing (CLIP and vision-aided losses off: the peer's
need open_clip) plus our per-step G EMA update, theirs `train_discriminator_step` + `train_generator_step` of their
`GigaGAN` trainer (hinge + multi-scale + matching-aware + their D's auxiliary reconstruction loss, EMA every 10th
step); the Paella train step (ours `PaellaTrainer.train_step` with the token cache warm, emoji-clip image vectors for
the ~10% of samples that keep them; theirs `MaskGit(ids, text_embeds=...)` + backward + Adam step: token ids in,
no VAE); 12-step CFG sampling of 8 (tokens only, no VQ decode: ours `PaellaPipeline.condition` + `sample_tokens`
with cfg 8, theirs `MaskGit.generate(timesteps=12, cond_scale=3)` with the VAE detached; a guided step costs the
same for any weight).

Measurement: every case runs in a fresh subprocess holding both sides; each repeat times both sides back to back, the
order alternating repeat by repeat, after --warmup untimed calls each; a timed sample is the mean of enough calls to
last ~0.2 s. The table gives medians over repeats and the median of the per-repeat peer/ours ratios. FLOPs:
`torch.utils.flop_counter.FlopCounterMode` over one call (matmul/conv/attention FLOPs, forward and backward, as
torch counts them). Peak memory: each side again in its own subprocess importing only its own library, peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss` after warm-up + 1 call) minus the RSS after imports (VmRSS);
the import baselines are printed under the table. The NaN check trains each GigaGAN side --nan-steps steps from
seed 0 (the peer with its own GP schedule, every 4th step) and reports the first step whose losses are not finite.
The matmul fp32/bf16 peaks of the machine (2048^3 torch.mm, --threads threads) head the output.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
RESULT = "@@peers result@@ "
TEXT_DIM = 384  # MiniLM's width: the width our emoji64 models take, given to both sides
VOCAB = ("red heart grinning face cat dog sushi food drink google twitter openmoji style smiling eyes thumbs up "
         "blue green yellow star moon sun tree flower car house hand flag music ball fire water").split()
PEER_GIGAGAN = "gigagan-pytorch 0.3.0"
PEER_MASKGIT = "muse-maskgit-pytorch 0.3.5"


# ==================================================================================================== text stand-ins


class RandomWords:
    """captions -> (tokens [B,L,D], mask [B,L], pooled [B,D]): one fixed N(0,1) vector per word (seeded by its CRC32),
    zero padding on the right, pooled = the normalised mean of the word vectors. Both sides get these."""

    def __init__(self, dim: int = TEXT_DIM):
        self.dim = dim
        self.vectors: dict[str, Any] = {}

    def vector(self, word: str) -> Any:
        import torch

        if word not in self.vectors:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            self.vectors[word] = torch.randn(self.dim, generator=g)
        return self.vectors[word]

    def __call__(self, captions: list[str]) -> tuple[Any, Any, Any]:
        import torch

        rows = [[self.vector(w) for w in c.split()] or [self.vector("")] for c in captions]
        L = max(len(r) for r in rows)
        tokens = torch.zeros(len(rows), L, self.dim)  # [B,L,D]
        mask = torch.zeros(len(rows), L, dtype=torch.bool)  # [B,L]
        for i, r in enumerate(rows):
            tokens[i, :len(r)] = torch.stack(r)
            mask[i, :len(r)] = True
        pooled = torch.nn.functional.normalize(torch.stack([torch.stack(r).mean(0) for r in rows]), dim=-1)  # [B,D]
        return tokens, mask, pooled


def captions(batch: int, seed: int) -> list[str]:
    """`batch` captions of 2-6 words from VOCAB, fixed by `seed`."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 6))) for _ in range(batch)]


class OursTextEncoder:
    """A fastt2i text encoder (`encode(list[str]) -> TextEmbedding`, `dim`, `name`) over `RandomWords`."""

    name = "random-words"

    def __init__(self, words: RandomWords):
        self.words, self.dim = words, words.dim

    def encode(self, texts: list[str]) -> Any:
        from fastt2i.text import TextEmbedding

        return TextEmbedding(*self.words(list(texts)))


def peer_clip(words: RandomWords) -> Any:
    """gigagan-pytorch's `OpenClipAdapter` without open_clip: `embed_texts` returns the random word vectors."""
    import torch
    import torch.nn.functional as F
    from gigagan_pytorch.open_clip import OpenClipAdapter

    class RandomWordsClip(OpenClipAdapter):
        def __init__(self):
            torch.nn.Module.__init__(self)  # skips open_clip.create_model_and_transforms
            self._dim_latent = words.dim

        @property
        def device(self):
            return torch.device("cpu")

        def embed_texts(self, texts):
            tokens, _, pooled = words(list(texts))
            return F.normalize(pooled, dim=-1), tokens

    return RandomWordsClip()


# ==================================================================================================== the models


def params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def ours_g_config(size: str) -> Any:
    from fastt2i.models.gigagan import GIGAGAN_PRESETS

    cfg = GIGAGAN_PRESETS.build("emoji64")
    if size == "8M":
        cfg = dataclasses.replace(cfg, channels=(256, 256, 128, 64, 32))
    return cfg


def ours_g(size: str) -> Any:
    from fastt2i.models.gigagan import GigaGANGenerator

    return GigaGANGenerator(ours_g_config(size))


def peer_g(size: str, words: RandomWords) -> Any:
    from gigagan_pytorch import Generator
    from gigagan_pytorch.gigagan_pytorch import TextEncoder

    cap, dim_latent = {"emoji64": (3, 64), "8M": (10, 256)}[size]
    text = TextEncoder(dim=128, depth=2, clip=peer_clip(words), dim_head=32, heads=4)
    return Generator(
        image_size=64, dim_capacity=cap, dim_latent=dim_latent,
        style_network=dict(dim=256, depth=4, dim_text_latent=128), text_encoder=text,
        self_attn_resolutions=(8,), self_attn_dim_head=32, self_attn_heads=4, self_attn_ff_mult=2,
        cross_attn_resolutions=(8,), cross_attn_dim_head=32, cross_attn_heads=4, cross_attn_ff_mult=2,
        num_conv_kernels=2)


def peer_d(words: RandomWords) -> Any:
    from gigagan_pytorch import Discriminator
    from gigagan_pytorch.gigagan_pytorch import TextEncoder

    text = TextEncoder(dim=32, depth=1, clip=peer_clip(words), dim_head=16, heads=4)
    return Discriminator(image_size=64, dim_capacity=3, dim_max=32, attn_resolutions=(), num_conv_kernels=1,
                         text_encoder=text, multiscale_input_resolutions=(32, 16, 8))


def peer_maskgit(words: RandomWords) -> Any:
    from types import SimpleNamespace

    import muse_maskgit_pytorch.t5 as t5
    from muse_maskgit_pytorch import MaskGit, MaskGitTransformer, VQGanVAE

    name = f"random-words-{words.dim}"
    t5.T5_CONFIGS[name] = {"config": SimpleNamespace(d_model=words.dim)}  # get_encoded_dim without the hub
    transformer = MaskGitTransformer(num_tokens=1024, seq_len=256, dim=256, depth=3, dim_head=64, heads=4, ff_mult=4,
                                     t5_name=name)
    transformer.encode_text = lambda texts: words(list(texts))[0]  # [B,L,D], zero padded (their mask: rows != 0)
    vae = VQGanVAE(dim=16, layers=2, codebook_size=1024, use_vgg_and_gan=False)  # LFQ (their default); never run
    return MaskGit(image_size=64, transformer=transformer, vae=vae, cond_drop_prob=0.25)


# ==================================================================================================== the cases
# A builder returns (fn, info): fn() runs one call of the case; info = {"params": int, "note": str}.


def _g_inputs(batch: int, words: RandomWords, z_dim: int) -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, z_dim, generator=g), words(captions(batch, 1))


def build_g_forward(side: str, size: str, batch: int, backward: bool) -> tuple[Callable[[], Any], dict]:
    import torch

    torch.manual_seed(0)
    words = RandomWords()
    if side == "ours":
        G = ours_g(size).train(backward)
        z, text = _g_inputs(batch, words, G.z_dim)

        def outputs():
            return G(z, text)  # pyramid, finest first
    else:
        G = peer_g(size, words).train(backward)
        z, _ = _g_inputs(batch, words, G.style_network_dim)
        enc = words(captions(batch, 1))[0]

        def outputs():
            return G(noise=z, text_encodings=enc, return_all_rgbs=True)[1]  # every scale, coarse first

    if backward:
        def fn():
            loss = sum(x.float().mean() for x in outputs())
            loss.backward()
            G.zero_grad(set_to_none=True)
    else:
        def fn():
            with torch.no_grad():
                outputs()
    return fn, {"params": params(G), "note": ""}


def build_dg_step(side: str, size: str, r1: bool | None, batch: int = 32) -> tuple[Callable[[], Any], dict]:
    """One D+G training step; r1 True/False = R1/GP on every step / off, None = each side's default schedule
    (ours: R1 every 16th step from step 0; theirs: GP every 4th step, counted from 1, as their `GigaGAN.forward`)."""
    import torch

    torch.manual_seed(0)
    words = RandomWords()
    tmp = tempfile.mkdtemp(prefix="fastt2i-peers-")
    g = torch.Generator().manual_seed(2)
    if side == "ours":
        from fastt2i.training.gigagan import GigaGANTrainer
        from fastt2i.training.presets import gigagan_emoji64

        cfg = gigagan_emoji64(clip_loss_weight=0.0, vision_aided_weight=0.0)
        r1_gamma = cfg.r1_gamma if r1 is None else (0.2 if r1 else 0.0)
        cfg = dataclasses.replace(cfg, generator=ours_g_config(size), r1_gamma=r1_gamma,
                                  r1_every=1 if r1 else cfg.r1_every,
                                  # fp32 like the peer (the emoji64 preset trains in bf16; one process holds one
                                  # AcceleratorState, and the peer's Accelerator asks for mixed_precision="no")
                                  train=dataclasses.replace(cfg.train, run_dir=tmp, batch_size=batch,
                                                            mixed_precision="no"))
        trainer = GigaGANTrainer(cfg, tensorboard=False, progress=False)
        trainer.setup()
        trainer.text = words  # captions -> (tokens, mask, pooled), in place of the cached MiniLM batcher
        ema = trainer._emas["G"][0]
        state = {"step": -1}

        def fn():
            s = state["step"] = state["step"] + 1  # from 0, as Trainer.run
            images = torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1
            losses = trainer.train_step({"image": images, "caption": captions(batch, s)}, s)
            ema.update(trainer.G, (s + 1) * batch, batch)
            return {k: float(v) for k, v in losses.items()}

        return fn, {"params": params(trainer.G) + params(trainer.D), "note": ""}

    from gigagan_pytorch import GigaGAN

    with contextlib.redirect_stdout(sys.stderr):  # their parameter printout
        gan = GigaGAN(generator=peer_g(size, words), discriminator=peer_d(words), generator_contrastive_loss_weight=0.0,
                      model_folder=f"{tmp}/models", results_folder=f"{tmp}/results", amp=False)
    state = {"step": 0}

    def batches():
        while True:
            state["b"] = state.get("b", 0) + 1
            yield torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1, captions(batch, state["b"])

    dl = batches()

    def fn():
        state["step"] += 1
        gp = r1 if r1 is not None else state["step"] % gan.apply_gradient_penalty_every == 0
        d = gan.train_discriminator_step(dl_iter=dl, apply_gradient_penalty=gp)
        gl = gan.train_generator_step(dl_iter=dl, batch_size=batch)
        return {**{f"d/{k}": float(v) for k, v in d._asdict().items() if v is not None},
                **{f"g/{k}": float(v) for k, v in gl._asdict().items() if v is not None}}

    return fn, {"params": params(gan.G) + params(gan.D), "note": ""}


def build_paella_train(side: str, batch: int = 32) -> tuple[Callable[[], Any], dict]:
    import torch

    torch.manual_seed(0)
    words = RandomWords()
    g = torch.Generator().manual_seed(3)
    keys = [f"img{i}" for i in range(batch)]
    if side == "ours":
        from fastt2i.training.paella import PaellaTrainer
        from fastt2i.training.presets import run_preset

        cfg = run_preset("paella", "emoji64")
        tmp = tempfile.mkdtemp(prefix="fastt2i-peers-")
        cfg = dataclasses.replace(cfg, vqgan="random-tiny", token_cache=True,
                                  train=dataclasses.replace(cfg.train, run_dir=tmp, batch_size=batch))
        trainer = PaellaTrainer(cfg, tensorboard=False, progress=False)
        trainer.setup()
        trainer.text = words
        images = torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1
        trainer.tokenize(images, keys)  # the token cache is warm, as after the first epoch
        state = {"step": 0}

        def fn():
            s = state["step"] = state["step"] + 1
            return {k: float(v) for k, v in trainer.train_step({"image": images, "caption": captions(batch, s),
                                                                 "key": keys}, s).items()}

        return fn, {"params": params(trainer.denoiser), "note": ""}

    maskgit = peer_maskgit(words)
    maskgit.vae = None  # token ids in: the VAE is never run in a train step
    opt = torch.optim.Adam(maskgit.transformer.parameters(), lr=1e-4)
    ids = torch.randint(0, 1024, (batch, 16, 16), generator=g)
    state = {"step": 0}

    def fn():
        s = state["step"] = state["step"] + 1
        loss = maskgit(ids, text_embeds=words(captions(batch, s))[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss)}

    return fn, {"params": params(maskgit.transformer), "note": ""}


def build_paella_sample(side: str, n: int = 8) -> tuple[Callable[[], Any], dict]:
    import torch

    torch.manual_seed(0)
    words = RandomWords()
    prompts = captions(n, 4)
    if side == "ours":
        from fastt2i.inference.paella import PaellaPipeline
        from fastt2i.models.paella import PAELLA_PRESETS, PaellaDenoiser
        from fastt2i.training.paella import random_tiny_vqgan

        denoiser = PaellaDenoiser(PAELLA_PRESETS.build("emoji64")).eval()
        pipe = PaellaPipeline(random_tiny_vqgan(1024, 64), denoiser, OursTextEncoder(words), None).eval()

        def fn():
            with torch.no_grad():
                cond = pipe.condition(prompts)
                uncond = pipe.condition(prompts, unconditional=True)
                return pipe.sample_tokens(cond, uncond, list(range(n)), steps=12, cfg=8.0)

        return fn, {"params": params(denoiser), "note": ""}

    maskgit = peer_maskgit(words).eval()
    maskgit.vae = TokensOnly()  # generate() then returns the token ids (a None VAE trips its fmap_size default)

    def fn():
        return maskgit.generate(prompts, fmap_size=16, timesteps=12, cond_scale=3)

    return fn, {"params": params(maskgit.transformer), "note": ""}


def _tokens_only_class() -> type:
    import torch

    class TokensOnly(torch.nn.Module):
        """In MaskGit's `vae` slot for sampling: 16x16 tokens at 64 px, and `decode_from_ids` hands the ids back."""

        def get_encoded_fmap_size(self, image_size: int) -> int:
            return image_size // 4

        def decode_from_ids(self, ids: Any) -> Any:
            return ids

    return TokensOnly


def TokensOnly() -> Any:  # noqa: N802 (a class built lazily, so that the parent process does not import torch)
    return _tokens_only_class()()


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    label: str
    build: Callable[[str], tuple[Callable[[], Any], dict]]
    peer: str
    note: str = ""


def _cases() -> list[Case]:
    out = []
    for size, tag in (("emoji64", "e64"), ("8M", "8m")):
        out += [
            Case(f"gfwd1-{tag}", f"G {size} forward, batch 1", lambda s, z=size: build_g_forward(s, z, 1, False),
                 PEER_GIGAGAN),
            Case(f"gfwd32-{tag}", f"G {size} forward, batch 32", lambda s, z=size: build_g_forward(s, z, 32, False),
                 PEER_GIGAGAN),
            Case(f"gfb32-{tag}", f"G {size} forward+backward, batch 32",
                 lambda s, z=size: build_g_forward(s, z, 32, True), PEER_GIGAGAN),
            Case(f"dg-{tag}", f"D+G step {size}, R1/GP off, batch 32", lambda s, z=size: build_dg_step(s, z, False),
                 PEER_GIGAGAN, "D 0.21M ours / 0.22M peer; peer D adds its aux. reconstruction loss"),
            Case(f"dgr1-{tag}", f"D+G step {size}, R1/GP on, batch 32", lambda s, z=size: build_dg_step(s, z, True),
                 PEER_GIGAGAN, "ours R1 on real images; peer GP on real and fake images"),
        ]
    out += [
        Case("paella-train", "Paella train step, batch 32 (vs MaskGit)", build_paella_train, PEER_MASKGIT,
             "ours: + emoji-clip image vectors for ~10% of samples, grad clip"),
        Case("paella-sample", "Paella 12-step CFG sampling of 8 (vs MaskGit)", build_paella_sample, PEER_MASKGIT,
             "tokens only; ours CFG in one batched forward, peer two forwards"),
    ]
    return out


CASES = {c.id: c for c in _cases()}


# ==================================================================================================== worker side


def _setup_worker(threads: int) -> None:
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")  # MaskGit.generate's progress bar
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(threads)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker: only the total is needed, and the tracker's backward hooks
    fail on parameters passed as module inputs under no_grad (AssertionError "Expected gradient function")."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def _flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    if hasattr(counter, "mod_tracker"):
        counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def _calibrate(fn: Callable[[], Any], warmup: int, target: float = 0.2) -> int:
    """Warm-up calls, then how many calls make one timed sample last about `target` seconds."""
    t = 0.0
    for _ in range(max(warmup, 1)):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
    return max(1, min(50, math.ceil(target / max(t, 1e-4))))


def _sample(fn: Callable[[], Any], inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def worker_time(case: Case, repeats: int, warmup: int) -> dict:
    fns, infos, inner, flops = {}, {}, {}, {}
    for side in ("ours", "peer"):
        fns[side], infos[side] = case.build(side)
    for side in ("ours", "peer"):
        inner[side] = _calibrate(fns[side], warmup)
        flops[side] = _flops(fns[side])
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    for r in range(repeats):
        for side in (("ours", "peer") if r % 2 == 0 else ("peer", "ours")):
            times[side].append(_sample(fns[side], inner[side]))
    return {"times": times, "flops": flops, "params": {s: infos[s]["params"] for s in fns},
            "inner": inner, "notes": {s: infos[s]["note"] for s in fns}}


def worker_memory(case: Case, side: str, warmup: int) -> dict:
    import resource

    # only this side's library (the import baseline differs; what is reported is the increment over it)
    if case.peer == PEER_GIGAGAN and side == "peer":
        import gigagan_pytorch  # noqa: F401
    elif side == "peer":
        import muse_maskgit_pytorch  # noqa: F401
    else:
        import fastt2i.inference.paella  # noqa: F401
        import fastt2i.training.gigagan  # noqa: F401
        import fastt2i.training.paella  # noqa: F401
    base = _rss_mb()
    fn, _ = case.build(side)
    for _ in range(max(warmup, 1) + 1):
        fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"base_mb": base, "peak_mb": peak}


def _finite(losses: dict) -> bool:
    return all(math.isfinite(v) for v in losses.values())


def worker_nan(steps: int) -> dict:
    """Train each GigaGAN side `steps` steps from seed 0 (emoji64 size) and record the losses of every step."""
    out = {}
    for side in ("ours", "peer"):
        fn, _ = build_dg_step(side, "emoji64", None)
        rows, first_bad = [], None
        for s in range(1, steps + 1):
            losses = fn()
            rows.append(losses)
            if first_bad is None and not _finite(losses):
                first_bad = s
        out[side] = {"first_nonfinite_step": first_bad, "losses": rows}
    return out


def worker_peaks(threads: int) -> dict:
    import torch

    n = 2048
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(2):
            torch.mm(a, b)
        ts = []
        for _ in range(7):
            t0 = time.perf_counter()
            torch.mm(a, b)
            ts.append(time.perf_counter() - t0)
        out[name] = 2 * n**3 / statistics.median(ts) / 1e9
    flags = ""
    with contextlib.suppress(OSError):
        flags = open("/proc/cpuinfo").read()
    out["amx"] = "amx_bf16" in flags
    out["cpu"] = platform.processor() or platform.machine()
    with contextlib.suppress(Exception):
        out["cpu"] = next(line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name"))
    out["threads"] = threads
    out["torch"] = torch.__version__
    out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return out


# ==================================================================================================== parent side


def run_worker(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def _fmt_ms(x: float | None) -> str:
    return "n/a" if x is None else (f"{x * 1e3:.1f}" if x < 1 else f"{x * 1e3:.0f}")


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def _pair(a: Any, b: Any, f: Callable[[Any], str]) -> str:
    return f"{f(a) if a is not None else 'n/a'} / {f(b) if b is not None else 'n/a'}"


def build_table(results: dict[str, dict], memory: dict[str, dict]) -> list[str]:
    lines = ["| case | peer | ours ms | peer ms | peer/ours (range) | params ours / peer | GFLOPs ours / peer | "
             "peak MB ours / peer | notes |", "|---|---|---|---|---|---|---|---|---|"]
    for cid, res in results.items():
        case = CASES[cid]
        if "error" in res:
            lines.append(f"| {case.label} | {case.peer} | n/a | n/a | n/a | | | | {res['error'][:300]} |")
            continue
        t = res["times"]
        mo, mp = statistics.median(t["ours"]), statistics.median(t["peer"])
        ratios = [p / o for o, p in zip(t["ours"], t["peer"], strict=True)]
        ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        p = res["params"]
        dp = p["peer"] / p["ours"] - 1
        fl = res["flops"]
        mem = memory.get(cid, {})

        def inc(side: str, mem: dict = mem) -> float | None:
            m = mem.get(side, {})
            return None if "peak_mb" not in m else m["peak_mb"] - m["base_mb"]

        notes = [case.note, f"peer params {dp:+.0%}",
                 f"FLOPs peer/ours {fl['peer'] / fl['ours']:.2f}" if fl["ours"] else ""]
        notes += [f"{s}: {m['error'][:120]}" for s, m in mem.items() if "error" in m]
        lines.append(
            f"| {case.label} | {case.peer} | {_fmt_ms(mo)} | {_fmt_ms(mp)} | {ratio} | "
            f"{_pair(p['ours'], p['peer'], _fmt_params)} | "
            f"{_pair(fl['ours'] / 1e9, fl['peer'] / 1e9, lambda x: f'{x:.2f}')} | "
            f"{_pair(inc('ours'), inc('peer'), lambda x: f'{x:.0f}')} | {'; '.join(n for n in notes if n)} |")
    return lines


def _revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=REPO).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="cases: " + ", ".join(CASES))
    ap.add_argument("--repeats", type=int, default=7, help="timed samples per side and case (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls per side before timing")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (torch.set_num_threads)")
    ap.add_argument("--cases", default="all", help="comma-separated case ids (default: all)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-side peak-memory subprocesses")
    ap.add_argument("--nan-steps", type=int, default=5, help="GigaGAN steps of the NaN check (0 = skip)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker subprocess")
    ap.add_argument("--out", type=Path, help="also write the Markdown output here")
    ap.add_argument("--json", type=Path, help="also write the raw per-repeat results here")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        _setup_worker(args.threads)
        kind, *rest = args.worker
        if kind == "time":
            res = worker_time(CASES[rest[0]], args.repeats, args.warmup)
        elif kind == "memory":
            res = worker_memory(CASES[rest[0]], rest[1], args.warmup)
        elif kind == "nan":
            res = worker_nan(args.nan_steps)
        else:
            res = worker_peaks(args.threads)
        print(RESULT + json.dumps(res), flush=True)
        return 0

    import importlib.util

    missing = [m for m in ("gigagan_pytorch", "muse_maskgit_pytorch", "fastt2i") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"{sys.executable} cannot import {', '.join(missing)}: run `bash benchmarks/peers_setup.sh` and use "
              "that venv's python (default /tmp/fastt2i-peers-venv/bin/python)", file=sys.stderr)
        return 2
    ids = list(CASES) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in ids if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    common = ["--threads", str(args.threads), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    out: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    peaks = run_worker([*common, "--worker", "peaks"], args.timeout)
    emit(f"# fastt2i vs peers (revision {_revision()})")
    emit()
    if "error" in peaks:
        emit(f"matmul peaks: n/a ({peaks['error']})")
    else:
        emit(f"Machine: {peaks['cpu']}, AMX {'yes' if peaks['amx'] else 'no'}, torch {peaks['torch']} "
             f"(CPU capability {peaks['cpu_capability']}), {peaks['threads']} threads; 2048^3 torch.mm peaks: "
             f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s. Python {platform.python_version()}.")
    emit()
    results: dict[str, dict] = {}
    memory: dict[str, dict] = {}
    for cid in ids:
        t0 = time.perf_counter()
        results[cid] = run_worker([*common, "--worker", "time", cid], args.timeout)
        if not args.no_memory:
            memory[cid] = {side: run_worker([*common, "--worker", "memory", cid, side], args.timeout)
                           for side in ("ours", "peer")}
        print(f"[{cid}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    for line in build_table(results, memory):
        emit(line)
    emit()
    emit(f"Times: median over {args.repeats} repeats of wall ms per call (each repeat = the mean of enough calls to "
         "last ~0.2 s), both sides in one process, order alternating; peer/ours = median (range) of the per-repeat "
         "ratios, > 1 means ours is faster. GFLOPs: FlopCounterMode over one call. Peak MB: peak RSS of a "
         "subprocess running that side alone, minus its RSS after imports.")
    bases = {side: [m[side]["base_mb"] for m in memory.values() if "base_mb" in m.get(side, {})]
             for side in ("ours", "peer")}
    if bases["ours"] or bases["peer"]:
        emit("Import baselines (RSS after imports, MB, median): " + ", ".join(
            f"{side} {statistics.median(v):.0f}" for side, v in bases.items() if v) + ".")
    if args.nan_steps > 0:
        nan = run_worker([*common, "--nan-steps", str(args.nan_steps), "--worker", "nan"], args.timeout)
        emit()
        emit(f"NaN check ({args.nan_steps} D+G steps from seed 0, emoji64 size, text-conditioned with random word "
             "vectors; each side's default R1/GP schedule: ours R1 at step 0 and every 16th, theirs GP every 4th):")
        if "error" in nan:
            emit(f"- n/a: {nan['error']}")
        else:
            for side in ("ours", "peer"):
                r = nan[side]
                bad = r["first_nonfinite_step"]
                emit(f"- {side}: " + ("all losses finite" if bad is None else f"non-finite losses from step {bad}: "
                     + ", ".join(f"{k}={v}" for k, v in r["losses"][bad - 1].items() if not math.isfinite(v))))
                keys = [k for k in r["losses"][0] if any(row[k] != 0 for row in r["losses"])]  # drop always-0 terms
                emit("  - per step: " + " | ".join(
                    f"{i}: " + ", ".join(f"{k.removeprefix('loss/')}={row[k]:.3g}" for k in keys)
                    for i, row in enumerate(r["losses"], 1)))
    if args.json:
        args.json.write_text(json.dumps({"peaks": peaks, "time": results, "memory": memory,
                                         "nan": nan if args.nan_steps > 0 else None}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""onnxruntime vs PyTorch (fp32, CPU, 2 threads): the bundled GigaGAN generator and an emoji64-sized Paella sampler.

    python benchmarks/onnx_speed.py                      # ~2-4 min on 2 shared cores (exports included)
    python benchmarks/onnx_speed.py --repeats 3 --threads 1

Rows (medians of --repeats timed runs after one warm-up, the two runtimes alternating run by run so that load
from other processes hits both alike; ratio = PyTorch / onnxruntime, > 1 = onnxruntime faster):

- gigagan-emoji64 generator at batch 1 and 32: the network only (text layers + mapping + synthesis, constant noise,
  psi = 1), from the same precomputed MiniLM embeddings and z; PyTorch = `GigaGANPipeline`'s own calls under
  `torch.no_grad()`, onnxruntime = `generator.onnx`.
- Paella emoji64 sizes (random weights: the emoji64 denoiser preset, 4.7M parameters, 16x16 tokens of the emoji64
  VQGAN with 1,024 codes; MiniLM text + emoji-clip vectors): one denoiser forward at the CFG batch 16, one VQGAN
  decode at batch 8, and `sample_tokens` + decode of 8 images with the paper's sampler (12 steps, CFG 8, temperature
  0.7 -> 0.3), conditioning computed once outside the timing.

The parity column is measured on the same inputs: max |image difference| (images in [-1,1]), the share of equal
argmax tokens of the denoiser logits, and the share of equal tokens after a full 12-step sampling run at
temperature 0. PyTorch threads: torch.set_num_threads; onnxruntime: SessionOptions.intra_op_num_threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fastt2i.inference import load_pipeline
from fastt2i.inference.onnx import OnnxGigaGANPipeline, OnnxPaellaPipeline, export_onnx
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.models import load_clip_model
from fastt2i.models.paella import PAELLA_PRESETS, VQGAN_PRESETS, PaellaDenoiser
from fastt2i.models.paella.vqgan import VQGAN
from fastt2i.text import load_text_encoder

PROMPTS = ["red heart", "grinning face", "sushi, food & drink, google style", "blue star", "cat face",
           "smiling face with sunglasses", "green apple", "fire"]


def timed_pair(fn_torch, fn_onnx, repeats: int) -> tuple[float, float]:
    """Median seconds of fn_torch() and fn_onnx(), one warm-up each, the two alternating run by run."""
    fn_torch(), fn_onnx()
    tt, to = [], []
    for _ in range(repeats):
        for fn, out in ((fn_torch, tt), (fn_onnx, to)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(tt), statistics.median(to)


def row(name: str, t_torch: float, t_onnx: float, parity: str) -> str:
    return f"| {name} | {t_torch * 1000:.1f} | {t_onnx * 1000:.1f} | {t_torch / t_onnx:.2f} | {parity} |"


@torch.no_grad()
def gigagan_rows(tmp: Path, threads: int, repeats: int) -> list[str]:
    pipe = load_pipeline("gigagan-emoji64")
    t0 = time.perf_counter()
    export_onnx("gigagan-emoji64", tmp / "gigagan")
    print(f"exported gigagan-emoji64 in {time.perf_counter() - t0:.1f} s")
    onnx_pipe = OnnxGigaGANPipeline.from_pretrained(tmp / "gigagan", text_encoder=pipe.text_encoder, threads=threads)
    g = pipe.generator
    rows = []
    for batch in (1, 32):
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        text, z = pipe.encode(prompts), pipe.latents(range(batch))

        def run_torch(text=text, z=z):
            t_local, t_mask, t_global = g.text_condition(text.tokens, text.mask, text.pooled)
            return g.synthesis(g.mapping(z, t_global), t_local, t_mask, noise_mode="const")[0].clamp(-1, 1)

        def run_onnx(text=text, z=z):
            return onnx_pipe.session(z=z, text_tokens=text.tokens, text_mask=text.mask, pooled=text.pooled)[0]

        diff = (run_torch() - run_onnx()).abs().max().item()
        full = (pipe.generate(prompts, range(batch)) - onnx_pipe.generate(prompts, range(batch))).abs().max().item()
        t_torch, t_onnx = timed_pair(run_torch, run_onnx, repeats)
        rows.append(row(f"gigagan-emoji64 generator, batch {batch}", t_torch, t_onnx,
                        f"max abs diff {max(diff, full):.1e}"))
    return rows


def paella_pipeline() -> PaellaPipeline:
    torch.manual_seed(0)
    cfg = PAELLA_PRESETS.build("emoji64")
    den = PaellaDenoiser(cfg)
    with torch.no_grad():  # random weights with non-trivial logits (the output projection / FiLM start at zero)
        for p in den.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return PaellaPipeline(VQGAN(VQGAN_PRESETS.build("emoji64")), den, load_text_encoder(cfg.text_encoder),
                          load_clip_model("emoji-clip"), clip_model_spec="emoji-clip").eval()


@torch.no_grad()
def paella_rows(tmp: Path, threads: int, repeats: int) -> list[str]:
    pipe = paella_pipeline()
    pipe.save_pretrained(tmp / "bundle")
    t0 = time.perf_counter()
    export_onnx(tmp / "bundle", tmp / "paella", clip_model=pipe.clip_model)
    print(f"exported the emoji64-sized Paella bundle in {time.perf_counter() - t0:.1f} s")
    onnx_pipe = OnnxPaellaPipeline.from_pretrained(tmp / "paella", text_encoder=pipe.text_encoder,
                                                   clip_model=pipe.clip_model, threads=threads)
    seeds = list(range(8))
    cond, uncond = pipe.condition(PROMPTS), pipe.condition(PROMPTS, unconditional=True)
    both = type(cond)(torch.cat([cond.tokens, uncond.tokens]), torch.cat([cond.mask, uncond.mask]))
    x = torch.randint(0, pipe.codebook_size, (16, *pipe.token_shape()), generator=torch.Generator().manual_seed(0))
    t = torch.linspace(1, 0.1, 16)
    rows = []

    ref, got = pipe.model_fn(x, t, both), onnx_pipe.model_fn(x, t, both)
    agree = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    t_torch, t_onnx = timed_pair(lambda: pipe.model_fn(x, t, both), lambda: onnx_pipe.model_fn(x, t, both), repeats)
    rows.append(row("paella emoji64 denoiser forward, batch 16 (CFG of 8)", t_torch, t_onnx,
                    f"argmax tokens equal {agree:.2%}"))

    tokens = x[:8]
    diff = (pipe.decode(tokens) - onnx_pipe.decode(tokens)).abs().max().item()
    t_torch, t_onnx = timed_pair(lambda: pipe.decode(tokens), lambda: onnx_pipe.decode(tokens), repeats)
    rows.append(row("emoji64 VQGAN decode, batch 8", t_torch, t_onnx, f"max abs diff {diff:.1e}"))

    ref_tok = pipe.sample_tokens(cond, uncond, seeds, steps=12, cfg=8.0, temperature=0.0)
    got_tok = onnx_pipe.sample_tokens(cond, uncond, seeds, steps=12, cfg=8.0, temperature=0.0)
    equal = (ref_tok == got_tok).float().mean().item()
    img_diff = (pipe.decode(ref_tok) - onnx_pipe.decode(got_tok)).abs().max().item()

    def sample(p):
        return p.decode(p.sample_tokens(cond, uncond, seeds, steps=12, cfg=8.0))

    t_torch, t_onnx = timed_pair(lambda: sample(pipe), lambda: sample(onnx_pipe), repeats)
    rows.append(row("paella emoji64 sampling: 8 images, 12 steps, CFG 8 + decode", t_torch, t_onnx,
                    f"temperature 0: tokens equal {equal:.2%}, images max abs diff {img_diff:.1e}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="PyTorch and onnxruntime intra-op threads")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per row (after one warm-up)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    with tempfile.TemporaryDirectory() as d:
        rows = gigagan_rows(Path(d), args.threads, args.repeats) + paella_rows(Path(d), args.threads, args.repeats)
    print(f"\ntorch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads, fp32, CPU; "
          f"median of {args.repeats}\n")
    print("| what | PyTorch ms | onnxruntime ms | PyTorch / ORT | parity |")
    print("| --- | ---: | ---: | ---: | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

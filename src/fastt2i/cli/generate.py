"""`fastt2i generate`: a grid of prompts x seeds from a GigaGAN export (default gigagan-emoji64) or a Paella bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = "gigagan-emoji64"

EXAMPLES = """examples:
  fastt2i generate "a red heart" "a smiling cat face" --seeds 0-7 -o grid.png
  fastt2i generate --model runs/gigagan-emoji/export "a blue star" --seeds 0-15 --truncation 0.7 -o stars.png
  fastt2i generate --model runs/gigagan-emoji "a green apple" --seeds 3,5,42 --individual samples/

  fastt2i generate --model runs/paella-emoji "a red heart" --seeds 0-7 --steps 12 --cfg 8 --temperature 0.7,0.3

Rows are prompts, columns are seeds; seed N gives the same image at any batch size. --truncation uses the
text-conditioned truncation of GigaGAN sec. 5 (1 = off, 0 = the prompt's mean image). --steps, --cfg, --temperature
and --sampler apply to Paella bundles (a directory with config.json naming a paella-pipeline, vqgan/ and denoiser/).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate images from prompts", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Generate a grid of images (rows = prompts, columns = seeds) with a GigaGAN model "
                                   "or a Paella bundle.")
    add_model_args(p)
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="one or more prompts (one grid row each)")
    p.add_argument("--seeds", default="0-7", help="seeds like 0-7,10 (one grid column each; default 0-7)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="truncation psi (1 = none, 0 = the text-conditioned mean; default 1)")
    p.add_argument("-o", "--output", default="grid.png", help="output PNG (default grid.png)")
    p.add_argument("--individual", metavar="DIR", help="also write each image as DIR/PROMPT-SLUG_sSEED.png")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    add_sampler_args(p)
    p.set_defaults(func=run)


def add_sampler_args(p: argparse.ArgumentParser, steps_flag: str = "--steps") -> None:
    """Paella sampler options (--steps / --cfg / --temperature / --sampler), shared with `fastt2i edit`.

    Args:
        p: the parser.
        steps_flag: the flag of the sampler steps (stored as `sampler_steps`; `edit interpolate` already uses
            --steps for frames).
    """
    g = p.add_argument_group("Paella sampler (Paella bundles only)")
    g.add_argument(steps_flag, dest="sampler_steps", type=int, default=None,
                   help="sampler steps (default 12, the paper's)")
    g.add_argument("--cfg", type=float, default=None, metavar="W",
                   help="classifier-free guidance weight, logits_c*W + logits_u*(1-W) (default 8, the official "
                        "sampler's; 1 = off)")
    g.add_argument("--temperature", default=None, metavar="T0[,T1]",
                   help="sampling temperature, linear from T0 to T1 over the steps (default 0.7,0.3; 0 = argmax)")
    g.add_argument("--sampler", default=None, choices=["renoise", "confidence"],
                   help="renoise: random tokens back with probability t (paper, default); confidence: the least "
                        "confident tokens")


def sampler_kwargs(args: argparse.Namespace) -> dict:
    """generate()/editing keyword arguments from the sampler options (defaults: the paper's)."""
    from fastt2i.errors import ConfigError
    from fastt2i.models.paella.schedule import DEFAULT_CFG, DEFAULT_STEPS, DEFAULT_TEMPERATURE

    temperature = DEFAULT_TEMPERATURE
    if args.temperature is not None:
        try:
            vals = [float(v) for v in str(args.temperature).split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--temperature must be T or T0,T1, got {args.temperature!r}") from None
        if len(vals) not in (1, 2) or min(vals) < 0:
            raise ConfigError(f"--temperature must be one or two numbers >= 0, got {args.temperature!r}")
        temperature = (vals[0], vals[-1])
    steps = DEFAULT_STEPS if args.sampler_steps is None else args.sampler_steps
    if steps < 1:
        raise ConfigError(f"the number of sampler steps must be >= 1, got {steps}")
    return {"steps": steps, "cfg": DEFAULT_CFG if args.cfg is None else args.cfg, "temperature": temperature,
            "mode": args.sampler or "renoise"}


def _sampler_options_given(args: argparse.Namespace) -> list[str]:
    names = [("sampler_steps", "--steps"), ("cfg", "--cfg"), ("temperature", "--temperature"), ("sampler", "--sampler")]
    return [flag for attr, flag in names if getattr(args, attr, None) is not None]


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model / --text-encoder / --device, shared with `fastt2i edit`."""
    p.add_argument("--model", help=f"export or run directory (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--text-encoder", metavar="SPEC",
                   help="override the text encoder recorded in the export (e.g. clip:/models/clip-vit-large-patch14)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")


def model_path(args: argparse.Namespace) -> Path:
    """--model, or the bundled default export."""
    from fastt2i.assets import ROOT
    from fastt2i.errors import AssetNotFoundError

    if args.model:
        return Path(args.model).expanduser()
    path = ROOT / DEFAULT_MODEL
    if not (path / "model.safetensors").is_file():
        raise AssetNotFoundError(f"the bundled default model {DEFAULT_MODEL} is not shipped yet; "
                                 "pass --model DIR (an export or run directory)")
    return path


def _device(args: argparse.Namespace) -> str:
    import torch

    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def is_paella(args: argparse.Namespace) -> bool:
    """True when --model names a Paella bundle (or a run directory whose export/ holds one)."""
    from fastt2i.inference.paella import is_bundle

    return bool(args.model) and is_bundle(Path(args.model).expanduser())


def load_pipeline(args: argparse.Namespace, allow_paella: bool = False):
    """The GigaGANPipeline named by --model (or the bundled default), on --device; a PaellaPipeline when
    `allow_paella` and --model is a Paella bundle."""
    from fastt2i.errors import ConfigError
    from fastt2i.inference.gigagan import GigaGANPipeline

    if is_paella(args):
        if not allow_paella:
            op = getattr(args, "edit_op", None)
            raise ConfigError(f"{args.model} is a Paella bundle; `edit {op}` works on GigaGAN models (Paella edits: "
                              "variation, inpaint, outpaint, img2img, interpolate)")
        return load_paella(args)
    return GigaGANPipeline.from_pretrained(model_path(args), device=_device(args), text_encoder=args.text_encoder)


def load_paella(args: argparse.Namespace):
    """The PaellaPipeline bundle named by --model, on --device."""
    from fastt2i.errors import ConfigError
    from fastt2i.inference.paella import PaellaPipeline

    if not is_paella(args):
        raise ConfigError(f"this needs a Paella bundle (--model DIR with config.json naming a paella-pipeline), "
                          f"got {args.model or 'the default GigaGAN model'}")
    return PaellaPipeline.from_pretrained(Path(args.model).expanduser(), device=_device(args),
                                          text_encoder=args.text_encoder)


def run(args: argparse.Namespace) -> int:
    import re

    import torch

    from fastt2i.errors import ConfigError
    from fastt2i.inference.noise import parse_seeds
    from fastt2i.utils.images import save_grid

    seeds = parse_seeds(args.seeds)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    n = len(args.prompts) * len(seeds)
    if n > 10_000:
        raise ConfigError(f"{n} images is too many for one grid (prompts x seeds <= 10,000)")
    pipe = load_pipeline(args, allow_paella=True)
    from fastt2i.inference.paella import PaellaPipeline

    if isinstance(pipe, PaellaPipeline):
        if args.truncation != 1.0:
            raise ConfigError("--truncation applies to GigaGAN models, not Paella bundles")
        kw = sampler_kwargs(args)
    else:
        given = _sampler_options_given(args)
        if given:
            raise ConfigError(f"{', '.join(given)} apply to Paella bundles; {args.model or DEFAULT_MODEL} is a GigaGAN "
                              "model")
        kw = {"truncation_psi": args.truncation}
    pairs = [(p, s) for p in args.prompts for s in seeds]  # row-major: prompt rows, seed columns
    chunks = []
    for i in range(0, n, args.batch_size):
        part = pairs[i: i + args.batch_size]
        chunks.append(pipe.generate([p for p, _ in part], [s for _, s in part], **kw).cpu())
    images = torch.cat(chunks)  # [n,3,H,W]
    out = save_grid(images, args.output, nrow=len(seeds))
    if args.individual:
        from fastt2i.utils.images import make_grid

        d = Path(args.individual)
        d.mkdir(parents=True, exist_ok=True)
        for (prompt, seed), img in zip(pairs, images):
            slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "prompt"
            make_grid(img[None], nrow=1, pad=0).save(d / f"{slug}_s{seed}.png")
    print(f"wrote {out} ({len(args.prompts)} prompts x {len(seeds)} seeds, {pipe.resolution} px)")
    return 0

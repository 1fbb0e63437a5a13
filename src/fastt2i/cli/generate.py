"""`fastt2i generate`: a grid of prompts x seeds from a GigaGAN export (default gigagan-emoji64) or a Paella bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastt2i.inference.loader import DEFAULT_MODEL

EXAMPLES = """examples:
  fastt2i generate "a red heart" "a smiling cat face" --seeds 0-7 -o grid.png
  fastt2i generate --model runs/gigagan-emoji/export "a blue star" --seeds 0-15 --truncation 0.7 -o stars.png
  fastt2i generate --model runs/gigagan-emoji "a green apple" --seeds 3,5,42 --individual samples/
  fastt2i generate "a red heart" --seeds 0-63 --dtype bf16 -o hearts.png

  fastt2i generate --model runs/paella-emoji "a red heart" --seeds 0-7 --steps 12 --cfg 8 --temperature 0.7,0.3
  fastt2i generate "red heart" --seeds 0-3 --upscale -o hearts256.png

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
    p.add_argument("-o", "--output", default="grid.png",
                   help="output image: .png (default grid.png), .jpg, .webp, ... (checked before generating)")
    p.add_argument("--individual", metavar="DIR",
                   help="also write each image as DIR/INDEX-SLUG-HASH_sSEED.png: INDEX = the prompt's 0-based "
                        "position (its grid row, zero-padded), SLUG = its ASCII letters and digits (may be empty), "
                        "HASH = the first 8 hex digits of the sha256 of the exact prompt; e.g. "
                        "003-red-heart-1a2b3c4d_s7.png")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--upscale", action="store_true",
                   help="chain the GigaGAN upsampler after the model (same prompts and seeds): 64 -> 256 px")
    p.add_argument("--upsampler", metavar="NAME|PATH",
                   help="the upsampler for --upscale (default: the bundled one); implies --upscale")
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
                   help="sampler steps (default: the bundle's setting, else 12, the paper's)")
    g.add_argument("--cfg", type=float, default=None, metavar="W",
                   help="classifier-free guidance weight, logits_c*W + logits_u*(1-W) (default: the bundle's "
                        "setting, else 8, the official sampler's; 1 = off)")
    g.add_argument("--temperature", default=None, metavar="T0[,T1]",
                   help="sampling temperature, linear from T0 to T1 over the steps (default: the bundle's, else "
                        "0.7,0.3; 0 = argmax)")
    g.add_argument("--sampler", default=None, choices=["renoise", "confidence"],
                   help="renoise: random tokens back with probability t (paper; default unless the bundle says "
                        "otherwise); confidence: the least confident tokens")


def sampler_kwargs(args: argparse.Namespace) -> dict:
    """generate()/editing keyword arguments from the sampler options given (the rest: the model's own settings,
    which a bundle records, else the paper's)."""
    from fastt2i.errors import ConfigError

    out: dict = {}
    if args.temperature is not None:
        try:
            vals = [float(v) for v in str(args.temperature).split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--temperature must be T or T0,T1, got {args.temperature!r}") from None
        if len(vals) not in (1, 2) or min(vals) < 0:
            raise ConfigError(f"--temperature must be one or two numbers >= 0, got {args.temperature!r}")
        out["temperature"] = (vals[0], vals[-1])
    if args.sampler_steps is not None:
        if args.sampler_steps < 1:
            raise ConfigError(f"the number of sampler steps must be >= 1, got {args.sampler_steps}")
        out["steps"] = args.sampler_steps
    if args.cfg is not None:
        out["cfg"] = args.cfg
    if args.sampler:
        out["mode"] = args.sampler
    return out


def _sampler_options_given(args: argparse.Namespace) -> list[str]:
    names = [("sampler_steps", "--steps"), ("cfg", "--cfg"), ("temperature", "--temperature"), ("sampler", "--sampler")]
    return [flag for attr, flag in names if getattr(args, attr, None) is not None]


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model / --text-encoder / --device, shared with `fastt2i edit`."""
    p.add_argument("--model", help=f"a bundled model's name, an export or a run directory (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--text-encoder", metavar="SPEC",
                   help="override the text encoder recorded in the export (e.g. clip:/models/clip-vit-large-patch14)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"],
                   help="compute dtype: bf16 runs a GigaGAN synthesis network or a Paella denoiser under autocast "
                        "(weights, mapping, truncation, logits and sampling stay fp32; faster on CPUs with AMX / "
                        "AVX-512 bf16, see benchmarks/generator_speed.py and paella_speed.py); default fp32")


def _device(args: argparse.Namespace) -> str:
    import torch

    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def is_paella(args: argparse.Namespace) -> bool:
    """True when --model names a Paella bundle (or a run directory whose export/ holds one)."""
    from fastt2i.inference import model_class
    from fastt2i.inference.paella import BUNDLE_CLASS

    return bool(args.model) and model_class(args.model) == BUNDLE_CLASS


def load_pipeline(args: argparse.Namespace, allow_paella: bool = False, **kw):
    """The pipeline that --model names (default: the bundled model), on --device, through
    `fastt2i.inference.load_pipeline` (`kw` goes to the pipeline's from_pretrained); a Paella bundle is refused unless
    `allow_paella` (GigaGAN-only edits)."""
    from fastt2i.errors import ConfigError
    from fastt2i.inference import load_pipeline as load

    if not allow_paella and is_paella(args):
        op = getattr(args, "edit_op", None)
        raise ConfigError(f"{args.model} is a Paella bundle; `edit {op}` works on GigaGAN models (Paella edits: "
                          "variation, inpaint, outpaint, img2img, interpolate)")
    if getattr(args, "dtype", "fp32") != "fp32":
        kw.setdefault("dtype", args.dtype)
    return load(args.model, device=_device(args), text_encoder=args.text_encoder, **kw)


def load_paella(args: argparse.Namespace):
    """The PaellaPipeline bundle named by --model, on --device."""
    from fastt2i.errors import ConfigError

    if not is_paella(args):
        raise ConfigError(f"this needs a Paella bundle (--model DIR with config.json naming a paella-pipeline), "
                          f"got {args.model or 'the default GigaGAN model'}")
    return load_pipeline(args, allow_paella=True)


def run(args: argparse.Namespace) -> int:
    import torch

    from fastt2i.errors import ConfigError
    from fastt2i.noise import parse_seeds
    from fastt2i.utils.images import save_grid
    from fastt2i.utils.paths import check_output_dir, check_output_file

    seeds = parse_seeds(args.seeds)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    n = len(args.prompts) * len(seeds)
    if n > 10_000:
        raise ConfigError(f"{n} images is too many for one grid (prompts x seeds <= 10,000)")
    output = check_output_file(args.output, flag="-o/--output")  # before loading and generating: no work lost
    individual = check_output_dir(args.individual, flag="--individual") if args.individual else None
    upsampler = args.upsampler if args.upsampler else (True if args.upscale else None)
    pipe = load_pipeline(args, allow_paella=True, upsampler=upsampler)
    from fastt2i.inference.paella import PaellaPipeline

    base = getattr(pipe, "base", pipe)  # an UpscaledPipeline wraps the base model
    if isinstance(base, PaellaPipeline):
        if args.truncation != 1.0:
            raise ConfigError("--truncation applies to the GANs (GigaGAN, StyleGAN-T), not Paella bundles")
        kw = sampler_kwargs(args)
    else:
        given = _sampler_options_given(args)
        if given:
            raise ConfigError(f"{', '.join(given)} apply to Paella bundles; {args.model or DEFAULT_MODEL} is a GAN "
                              f"({type(base).__name__})")
        kw = {"truncation_psi": args.truncation}
    pairs = [(p, s) for p in args.prompts for s in seeds]  # row-major: prompt rows, seed columns
    chunks = []
    for i in range(0, n, args.batch_size):
        part = pairs[i: i + args.batch_size]
        chunks.append(pipe.generate([p for p, _ in part], [s for _, s in part], **kw).cpu())
    images = torch.cat(chunks)  # [n,3,H,W]
    out = save_grid(images, output, nrow=len(seeds))
    if individual is not None:
        write_individual(images, args.prompts, seeds, individual)
    print(f"wrote {out} ({len(args.prompts)} prompts x {len(seeds)} seeds, {pipe.resolution} px)")
    return 0


def individual_names(prompts: list[str], seeds: list[int]) -> list[str]:
    """File names of `--individual`, prompt-major like the grid: INDEX-SLUG-HASH_sSEED.png (`prompt_file_stem`)."""
    from fastt2i.utils.paths import prompt_file_stem

    width = max(3, len(str(len(prompts) - 1)))
    stems = [prompt_file_stem(i, p, width) for i, p in enumerate(prompts)]
    return [f"{stem}_s{s}.png" for stem in stems for s in seeds]


def write_individual(images, prompts: list[str], seeds: list[int], directory: str | Path) -> list[Path]:
    """Write images [P*S,3,H,W] (prompt-major) one PNG each under `directory` with `individual_names`."""
    from fastt2i.utils.images import make_grid

    d = Path(directory).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / name for name in individual_names(prompts, seeds)]
    for path, img in zip(paths, images):
        make_grid(img[None], nrow=1, pad=0).save(path)
    return paths

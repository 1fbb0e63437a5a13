"""`fastt2i edit`: GigaGAN latent editing (truncation, mixing, interpolation, prompt mixing) and Paella token editing
(variation, inpaint, outpaint, img2img, interpolate)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastt2i.cli.generate import add_model_args, add_sampler_args, is_paella, load_paella, load_pipeline, sampler_kwargs

EXAMPLES = """examples:
  fastt2i edit truncation --model runs/gg/export "a red heart" --seeds 0-3 --psi 1,0.7,0.4,0 -o trunc.png
  fastt2i edit mix --model runs/gg/export "a smiling cat face" --rows 0-3 --cols 10-13 --cutoff 6 -o mix.png
  fastt2i edit interpolate --model runs/gg/export "a red heart" "a blue star" --seed 7 --steps 24 -o morph.gif
  fastt2i edit prompt-mix --model runs/gg/export --part 0:6 "a red heart" --part 6: "a blue star" -o pmix.png

  fastt2i edit variation --model runs/paella/export emoji.png --seeds 0-3 -o var.png
  fastt2i edit inpaint --model runs/paella/export emoji.png --mask mask.png "a blue star" --seeds 0-3 -o inp.png
  fastt2i edit outpaint --model runs/paella/export emoji.png "a red heart" --scale 0.5 -o out.png
  fastt2i edit img2img --model runs/paella/export emoji.png "a green apple" --strength 0.6 -o i2i.png

GigaGAN edits work on the styles ws (one per layer; `fastt2i edit styles --model M` prints how many) and on the text
embeddings; the same seed gives the same z as in `fastt2i generate`. Paella edits (variation, inpaint, outpaint,
img2img; interpolate too when --model is a Paella bundle) work on the VQGAN token grid: known tokens are kept at every
sampler step; --steps/--cfg/--temperature/--sampler set the sampler.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="edit images (GigaGAN: truncation, mix, ...; Paella: variation, inpaint, ...)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Latent editing of a GigaGAN model or token editing with a Paella bundle; each "
                                   "edit writes a PNG (or GIF).")
    ops = p.add_subparsers(dest="edit_op", metavar="EDIT")
    fmt = argparse.RawDescriptionHelpFormatter

    t = ops.add_parser("truncation", help="grid of seeds x truncation psi", formatter_class=fmt,
                       epilog='example:\n  fastt2i edit truncation --model M "a red heart" --seeds 0-3 '
                              '--psi 1,0.7,0.4,0 -o trunc.png\n\nRows are seeds, columns psi values; psi 0 is the '
                              "prompt's text-conditioned mean image (GigaGAN sec. 5).")
    add_model_args(t)
    t.add_argument("prompt")
    t.add_argument("--seeds", default="0-3", help="seeds, one grid row each (default 0-3)")
    t.add_argument("--psi", default="1,0.8,0.6,0.4,0.2,0", help="comma-separated psi values, one column each")
    t.add_argument("--cutoff", type=int, default=None, help="truncate only the first CUTOFF styles (default all)")
    t.add_argument("-o", "--output", default="truncation.png")
    t.set_defaults(func=run_truncation)

    m = ops.add_parser("mix", help="style-mixing grid: coarse styles from rows, fine from columns", formatter_class=fmt,
                       epilog='example:\n  fastt2i edit mix --model M "a smiling cat face" --rows 0-3 --cols 10-13 '
                              "--cutoff 6 -o mix.png\n\nTop row: column sources; left column: row sources; inside: "
                              "styles 0..CUTOFF-1 from the row seed, the rest from the column seed.")
    add_model_args(m)
    m.add_argument("prompt")
    m.add_argument("--rows", default="0-3", help="row seeds (coarse styles)")
    m.add_argument("--cols", default="10-13", help="column seeds (fine styles)")
    m.add_argument("--cutoff", type=int, default=None, help="first style taken from the columns (default num_ws//2)")
    m.add_argument("--truncation", type=float, default=1.0, metavar="PSI")
    m.add_argument("-o", "--output", default="mix.png")
    m.set_defaults(func=run_mix)

    i = ops.add_parser("interpolate", help="morph one prompt into another (GIF + PNG strip)", formatter_class=fmt,
                       epilog='example:\n  fastt2i edit interpolate --model M "a red heart" "a blue star" --seed 7 '
                              "--steps 24 --fps 12 -o morph.gif\n\nWrites morph.gif and the frames side by side in "
                              "morph.png; z is fixed, text embeddings and w are interpolated. With a Paella bundle the "
                              "conditioning is interpolated and the seed's tokens and draws are shared by all frames.")
    add_model_args(i)
    i.add_argument("prompt_a")
    i.add_argument("prompt_b")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--steps", type=int, default=16, help="frames (default 16)")
    i.add_argument("--fps", type=float, default=8.0, help="GIF frames per second (default 8)")
    i.add_argument("--boomerang", action="store_true", help="play the GIF forward then backward")
    i.add_argument("--truncation", type=float, default=1.0, metavar="PSI")
    i.add_argument("-o", "--output", default="interpolation.gif")
    add_sampler_args(i, steps_flag="--sampler-steps")
    i.set_defaults(func=run_interpolate)

    pm = ops.add_parser("prompt-mix", help="different prompts on different layer ranges", formatter_class=fmt,
                        epilog='example:\n  fastt2i edit prompt-mix --model M --part 0:6 "a red heart" --part 6: '
                               '"a blue star" --seed 3 -o pmix.png\n\nRanges are python slices over the styles '
                               "(START:STOP, STOP excluded, empty STOP = to the end) and must cover all of them once. "
                               "Writes each prompt's plain image, then the mix.")
    add_model_args(pm)
    pm.add_argument("--part", nargs=2, action="append", required=True, metavar=("START:STOP", "PROMPT"),
                    help="a layer range and the prompt driving it (repeat)")
    pm.add_argument("--seed", type=int, default=0)
    pm.add_argument("--truncation", type=float, default=1.0, metavar="PSI")
    pm.add_argument("-o", "--output", default="prompt_mix.png")
    pm.set_defaults(func=run_prompt_mix)

    s = ops.add_parser("styles", help="print the style layout (num_ws and the resolution of each style)")
    add_model_args(s)
    s.set_defaults(func=run_styles)

    _register_paella(ops, fmt)

    def no_op(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=no_op)


def _floats(text: str, what: str) -> list[float]:
    from fastt2i.errors import ConfigError

    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{what} is empty")
    return vals


def _check_output(args: argparse.Namespace) -> Path:
    """-o/--output refused in one line before the model is loaded (a directory, a bad extension, unwritable)."""
    from fastt2i.utils.paths import check_output_file

    return check_output_file(args.output, flag="-o/--output")


def _done(path: Path | str, what: str) -> int:
    print(f"wrote {path} ({what})")
    return 0


def run_truncation(args: argparse.Namespace) -> int:
    import torch

    from fastt2i.noise import parse_seeds
    from fastt2i.utils.images import save_grid

    seeds, psis = parse_seeds(args.seeds), _floats(args.psi, "--psi")
    _check_output(args)
    pipe = load_pipeline(args)
    cols = [pipe.generate([args.prompt], seeds, truncation_psi=psi, truncation_cutoff=args.cutoff).cpu()
            for psi in psis]  # each [S,3,H,W]
    images = torch.stack(cols, dim=1).flatten(0, 1)  # [S*P,3,H,W], rows = seeds
    return _done(save_grid(images, args.output, nrow=len(psis)), f"{len(seeds)} seeds x psi {psis}")


def run_mix(args: argparse.Namespace) -> int:
    from fastt2i.editing.mixing import style_mixing_grid
    from fastt2i.noise import parse_seeds
    from fastt2i.utils.images import save_grid

    _check_output(args)
    pipe = load_pipeline(args)
    cutoff = pipe.generator.num_ws // 2 if args.cutoff is None else args.cutoff
    grid = style_mixing_grid(pipe, args.prompt, parse_seeds(args.rows), parse_seeds(args.cols), cutoff,
                             truncation_psi=args.truncation).cpu()  # [1+R,1+C,3,H,W]
    out = save_grid(grid.flatten(0, 1), args.output, nrow=grid.shape[1])
    return _done(out, f"{grid.shape[0] - 1} rows x {grid.shape[1] - 1} columns, cutoff {cutoff}/{pipe.generator.num_ws}")


def run_interpolate(args: argparse.Namespace) -> int:
    from fastt2i.editing.interpolation import prompt_interpolation, save_frame_strip, save_gif
    from fastt2i.utils.paths import check_output_file

    gif = check_output_file(args.output, flag="-o/--output", extensions=[".gif"])  # save_gif always writes a GIF
    check_output_file(gif.with_suffix(".png"), flag="-o/--output (its PNG strip)")
    if is_paella(args):
        from fastt2i.editing.paella import interpolate

        pipe = load_paella(args)
        frames = interpolate(pipe, args.prompt_a, args.prompt_b, num=args.steps, seed=args.seed,
                             **sampler_kwargs(args)).cpu()
        gif = save_gif(frames, args.output, fps=args.fps, boomerang=args.boomerang)
        strip = save_frame_strip(frames, Path(args.output).with_suffix(".png"))
        return _done(gif, f"{len(frames)} frames; strip {strip}")
    from fastt2i.cli.generate import _sampler_options_given
    from fastt2i.errors import ConfigError

    if _sampler_options_given(args):
        raise ConfigError("--sampler-steps/--cfg/--temperature/--sampler apply to Paella bundles, not GigaGAN models")
    pipe = load_pipeline(args)
    frames = prompt_interpolation(pipe, args.prompt_a, args.prompt_b, args.seed, args.steps,
                                  truncation_psi=args.truncation).cpu()
    gif = save_gif(frames, args.output, fps=args.fps, boomerang=args.boomerang)
    strip = save_frame_strip(frames, Path(args.output).with_suffix(".png"))
    return _done(gif, f"{len(frames)} frames; strip {strip}")


def _slice(text: str, num_ws: int) -> tuple[int, int]:
    from fastt2i.errors import ConfigError

    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(start or 0), int(stop) if stop.strip() else num_ws
    except ValueError:
        raise ConfigError(f"--part range {text!r} is not START:STOP (e.g. 0:6 or 6:)") from None


def run_prompt_mix(args: argparse.Namespace) -> int:
    import torch

    from fastt2i.editing.mixing import prompt_mixing
    from fastt2i.utils.images import save_grid

    _check_output(args)
    pipe = load_pipeline(args)
    num_ws = pipe.generator.num_ws
    parts = [(prompt, *_slice(rng, num_ws)) for rng, prompt in args.part]
    mixed = prompt_mixing(pipe, parts, args.seed, truncation_psi=args.truncation).cpu()
    plain = pipe.generate([p for p, _, _ in parts], [args.seed] * len(parts), truncation_psi=args.truncation).cpu()
    out = save_grid(torch.cat([plain, mixed]), args.output, nrow=len(parts) + 1)
    return _done(out, f"{len(parts)} prompts then their mix over {num_ws} styles")


def run_styles(args: argparse.Namespace) -> int:
    cfg = load_pipeline(args).generator.config
    print(f"num_ws {cfg.num_ws} (coarse to fine)")
    for res, convs, torgb in cfg.style_layout():
        styles = f"styles {convs.start}..{convs.stop - 1}" if len(convs) else "no styles"
        print(f"  {res:>4} px: {styles} (convs), {torgb} (toRGB)")
    return 0


# ---------------------------------------------------------------------------------------------------- Paella edits
def _register_paella(ops: argparse._SubParsersAction, fmt: type) -> None:
    """The Paella token edits: variation, inpaint, outpaint, img2img (each needs --model BUNDLE)."""

    def common(q: argparse.ArgumentParser, default_out: str) -> None:
        add_model_args(q)
        q.add_argument("image", help="input image file (resized to the model's resolution)")
        q.add_argument("--seeds", default="0-3", help="seeds, one result each (default 0-3)")
        q.add_argument("-o", "--output", default=default_out, help=f"output PNG grid: the input, then one result "
                                                                   f"per seed (default {default_out})")
        add_sampler_args(q)

    v = ops.add_parser("variation", help="Paella: variations of an image (CLIP image embedding)", formatter_class=fmt,
                       epilog="example:\n  fastt2i edit variation --model BUNDLE emoji.png --seeds 0-3 -o var.png\n\n"
                              "Conditions on the CLIP image embedding of the input (text dropped unless --prompt); "
                              "needs a bundle trained with CLIP tokens.")
    common(v, "variation.png")
    v.add_argument("--prompt", default=None, help="optional text added to the conditioning")
    v.set_defaults(func=run_variation)

    ip = ops.add_parser("inpaint", help="Paella: regenerate the white region of a mask", formatter_class=fmt,
                        epilog='example:\n  fastt2i edit inpaint --model BUNDLE emoji.png --mask mask.png '
                               '"a blue star" --seeds 0-3 -o inp.png\n\n'
                               "The mask is an image (white = regenerate) resized to the input; a token is "
                               "regenerated if any pixel of its 4x4 cell is white.")
    common(ip, "inpaint.png")
    ip.add_argument("prompt")
    ip.add_argument("--mask", required=True, help="mask image (white = regenerate)")
    ip.set_defaults(func=run_inpaint)

    op = ops.add_parser("outpaint", help="Paella: extend an image beyond its borders", formatter_class=fmt,
                        epilog='examples:\n  fastt2i edit outpaint --model BUNDLE emoji.png "a red heart" --scale 0.5\n'
                               '  fastt2i edit outpaint --model BUNDLE emoji.png "a red heart" --pad 16,0,16,0\n\n'
                               "--scale shrinks the image and centres it in a same-size canvas; --pad adds LEFT,TOP,"
                               "RIGHT,BOTTOM pixels (multiples of 4 x the denoiser's downsampling).")
    common(op, "outpaint.png")
    op.add_argument("prompt")
    op.add_argument("--pad", default=None, metavar="L,T,R,B", help="pixels added on each side")
    op.add_argument("--scale", type=float, default=None, help="shrink factor in (0,1) (default 0.5 without --pad)")
    op.set_defaults(func=run_outpaint)

    ii = ops.add_parser("img2img", help="Paella: re-generate an image toward a prompt from a noise level",
                        formatter_class=fmt,
                        epilog='example:\n  fastt2i edit img2img --model BUNDLE emoji.png "a green apple" '
                               "--strength 0.6\n\nThe image's tokens are renoised to t = STRENGTH, then sampled "
                               "from there to 0 (0 = keep the image, 1 = ignore it).")
    common(ii, "img2img.png")
    ii.add_argument("prompt")
    ii.add_argument("--strength", type=float, default=0.6, help="starting t in [0,1] (default 0.6)")
    ii.set_defaults(func=run_img2img)


def _paella_inputs(args: argparse.Namespace):
    from fastt2i.editing.paella import load_image
    from fastt2i.noise import parse_seeds

    seeds = parse_seeds(args.seeds)
    _check_output(args)
    pipe = load_paella(args)
    image = load_image(args.image, resolution=pipe.resolution)  # [1,3,H,W]
    return pipe, image, seeds


def _save_paella(args: argparse.Namespace, image, results, what: str) -> int:
    import torch
    import torch.nn.functional as F

    from fastt2i.utils.images import save_grid

    results = results.cpu()
    dh, dw = results.shape[2] - image.shape[2], results.shape[3] - image.shape[3]
    if dh or dw:  # outpainting with --pad: show the input centred on a gray canvas of the output size
        image = F.pad(image, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), value=0.0)
    out = save_grid(torch.cat([image, results]), args.output, nrow=len(results) + 1)
    return _done(out, what)


def run_variation(args: argparse.Namespace) -> int:
    from fastt2i.editing.paella import variations

    pipe, image, seeds = _paella_inputs(args)
    out = variations(pipe, image, seeds, prompt=args.prompt, **sampler_kwargs(args))
    return _save_paella(args, image, out, f"input + {len(seeds)} variations")


def run_inpaint(args: argparse.Namespace) -> int:
    from fastt2i.editing.paella import inpaint, load_mask

    pipe, image, seeds = _paella_inputs(args)
    mask = load_mask(args.mask, tuple(image.shape[2:]))
    out = inpaint(pipe, image, mask, args.prompt, seeds, **sampler_kwargs(args))
    return _save_paella(args, image, out, f"input + {len(seeds)} inpaintings")


def run_outpaint(args: argparse.Namespace) -> int:
    from fastt2i.editing.paella import outpaint
    from fastt2i.errors import ConfigError

    pad = None
    if args.pad is not None:
        try:
            pad = [int(v) for v in args.pad.split(",")]
        except ValueError:
            raise ConfigError(f"--pad must be LEFT,TOP,RIGHT,BOTTOM integers, got {args.pad!r}") from None
        if args.scale is not None:
            raise ConfigError("give --pad or --scale, not both")
    scale = None if pad is not None else (0.5 if args.scale is None else args.scale)
    pipe, image, seeds = _paella_inputs(args)
    out = outpaint(pipe, image, args.prompt, seeds, pad=pad, scale=scale, **sampler_kwargs(args))
    return _save_paella(args, image, out, f"input + {len(seeds)} outpaintings")


def run_img2img(args: argparse.Namespace) -> int:
    from fastt2i.editing.paella import img2img
    from fastt2i.errors import ConfigError

    if not 0.0 <= args.strength <= 1.0:
        raise ConfigError(f"--strength must be in [0, 1], got {args.strength}")
    pipe, image, seeds = _paella_inputs(args)
    out = img2img(pipe, image, args.prompt, seeds, t_start=args.strength, **sampler_kwargs(args))
    return _save_paella(args, image, out, f"input + {len(seeds)} results at strength {args.strength}")

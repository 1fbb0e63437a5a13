"""Where the GANs' seed collapse comes from: what the synthesis network uses of z, of the global text vector and
of the text tokens, layer by layer, against what the data supports (docs/training-runs.md, issue 13).

    python benchmarks/collapse.py --data ../shared/data/emoji64.npz
    python benchmarks/collapse.py --models gigagan-emoji64,PATH/TO/EXPORT --prompts 48 --seeds 8

For P style-free validation names ("red heart") and S seeds per name, with emoji-net's pooled features F (the
evaluation network; analysis only, never a training signal):

  seed share     within-name feature variance / total variance over the P x S images: how much of what varies
                 is the seed's doing. Data: the same ratio over the real images of those names (their styles and
                 skin tones are what a seed may choose between).
  swap distances mean ||F(a) - F(b)||^2 between an image and the same image with one input swapped:
                   z        another seed, same prompt
                   t_global the global text vector of another name (tokens kept)
                   t_local  the text tokens of another name (global vector kept; StyleGAN-T has none: 0)
                   text     both (another name)
                 z / text is the seed's share of the image's freedom; data: two images of one name (other
                 style) against two images of different names.
  style share    per modulated layer (coarse to fine): within-name variance / total variance of its styles s
                 (s = A(w), or s1 * s2 + s3 in StyleGAN-T): where the seed reaches the synthesis and where it
                 is squeezed out.
  cross-attn     GigaGAN only, per cross-attention layer: entropy of the attention over the real tokens divided
                 by log(#tokens) (1 = uniform: the layer reads no particular word), and ||update|| / ||input||
                 of its residual (how much the tokens change the features there).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from fastt2i.data.captions import caption_parts
from fastt2i.evaluation import style_names
from fastt2i.inference import bundled_models, load_pipeline
from fastt2i.metrics.emoji import EmojiNetFeatures
from fastt2i.nn.attention import CrossAttention


def share(x: torch.Tensor) -> float:
    """x [P,S,D] -> within-group variance / total variance (both summed over D)."""
    total = x.reshape(-1, x.shape[-1]).var(dim=0, unbiased=False).sum()
    within = (x - x.mean(dim=1, keepdim=True)).pow(2).mean(dim=(0, 1)).sum()
    return float(within / total.clamp_min(1e-12))


def swap_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).sum(dim=-1).mean())


class Probe:
    """Hooks on a generator: the styles of every modulated layer and, where present, cross-attention statistics."""

    def __init__(self, generator: torch.nn.Module):
        self.styles: dict[str, list[torch.Tensor]] = {}
        self.attn: dict[str, list[tuple[float, float]]] = {}
        self.active = False
        self._undo: list[Any] = []
        for name, mod in generator.synthesis.named_modules():
            if hasattr(mod, "styles") and callable(mod.styles) and hasattr(mod, "affine"):
                self._wrap_styles(name, mod)
            if isinstance(mod, CrossAttention):
                self._undo.append(mod.register_forward_hook(self._cross_hook(name)))

    def _wrap_styles(self, name: str, mod: torch.nn.Module) -> None:
        original = mod.styles

        def styles(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s, p = original(w)
            if self.active:
                self.styles.setdefault(name, []).append(s.detach().float().cpu())
            return s, p

        mod.styles = styles  # instance attribute shadows the method while probing

    def _cross_hook(self, name: str):
        def hook(mod: CrossAttention, args: tuple, out: torch.Tensor) -> None:
            if not self.active:
                return
            x, context = args[0], args[1]
            mask = args[2] if len(args) > 2 else None
            logits = mod.logits(x, context).float()  # [B,h,N,L]
            if mask is not None:
                logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
                n_real = mask.sum(dim=1).clamp_min(2).float()  # [B]
            else:
                n_real = torch.full((x.shape[0],), float(context.shape[1]))
            p = logits.softmax(dim=-1)
            ent = -(p * p.clamp_min(1e-12).log()).sum(dim=-1).mean(dim=(1, 2))  # [B]
            rel = (out.float() - x.float()).flatten(1).norm(dim=1) / x.float().flatten(1).norm(dim=1)  # [B]
            self.attn.setdefault(name, []).append((float((ent / n_real.log()).mean()), float(rel.mean())))
        return hook

    def close(self) -> None:
        for h in self._undo:
            h.remove()


@torch.inference_mode()
def images_for(pipe: Any, text: Any, t_swap: Any | None, z: torch.Tensor, swap: str) -> torch.Tensor:
    """Synthesis at psi = 1 with z [B,z_dim] and the text of `text`, the global vector or tokens from `t_swap`."""
    g = pipe.generator
    t_local, t_mask, t_global = g.text_condition(text.tokens, text.mask, text.pooled)
    if swap in ("t_global", "t_local"):
        o_local, o_mask, o_global = g.text_condition(t_swap.tokens, t_swap.mask, t_swap.pooled)
        if swap == "t_global":
            t_global = o_global
        else:
            t_local, t_mask = o_local, o_mask
    ws = g.mapping(z, t_global)
    with pipe._autocast():
        return g.synthesis(ws, t_local, t_mask, noise_mode="const")[0].float().clamp(-1, 1)


def pad_to(text: Any, length: int) -> Any:
    """A TextEmbedding with tokens/mask padded to `length` (so two prompts' tokens can be exchanged)."""
    extra = length - text.tokens.shape[1]
    if extra <= 0:
        return text
    tokens = torch.nn.functional.pad(text.tokens, (0, 0, 0, extra))
    mask = torch.nn.functional.pad(text.mask, (0, extra), value=False)
    return type(text)(tokens=tokens, mask=mask, pooled=text.pooled)


def analyse_model(name: str, names: list[str], seeds: int, net: EmojiNetFeatures) -> dict[str, Any]:
    pipe = load_pipeline(name)
    pipe.dtype = "fp32"
    P, S = len(names), seeds
    prompts = [n for n in names for _ in range(S)]  # name-major
    other = [names[(i + 1) % P] for i in range(P) for _ in range(S)]  # the next name: the swap partner
    text, text_o = pipe.encode(prompts), pipe.encode(other)
    L = max(text.tokens.shape[1], text_o.tokens.shape[1])
    text, text_o = pad_to(text, L), pad_to(text_o, L)
    z = pipe.latents(list(range(S)) * P)  # seed k for the k-th image of every name
    z_o = pipe.latents([S + k for k in range(S)] * P)  # other seeds
    probe = Probe(pipe.generator)
    probe.active = True
    base = images_for(pipe, text, None, z, "none")
    probe.active = False
    feats = {"base": net(base)}
    feats["z"] = net(images_for(pipe, text, None, z_o, "none"))
    feats["t_global"] = net(images_for(pipe, text, text_o, z, "t_global"))
    uses_tokens = any(isinstance(m, CrossAttention) for m in pipe.generator.synthesis.modules())
    feats["t_local"] = net(images_for(pipe, text, text_o, z, "t_local")) if uses_tokens else feats["base"]
    feats["text"] = net(images_for(pipe, text_o, None, z, "none"))
    probe.close()
    out: dict[str, Any] = {"seed_share": share(feats["base"].reshape(P, S, -1))}
    for k in ("z", "t_global", "t_local", "text"):
        out[f"d_{k}"] = swap_distance(feats["base"], feats[k])
    out["z_over_text"] = out["d_z"] / max(out["d_text"], 1e-12)
    out["layers"] = [(lname, share(torch.cat(v).reshape(P, S, -1)))
                     for lname, v in probe.styles.items()]
    out["cross"] = [(lname, *np.mean(np.array(v), axis=0).tolist()) for lname, v in probe.attn.items()]
    return out


def analyse_data(data: str, names: list[str], net: EmojiNetFeatures, per_name: int) -> dict[str, Any]:
    with np.load(data, allow_pickle=False) as d:
        captions, images = d["captions"], d["images"]
    rows: dict[str, list[int]] = {}
    wanted = set(names)
    for i, c in enumerate(captions):
        n = caption_parts(str(c)).name
        if n in wanted:
            rows.setdefault(n, []).append(i)
    kept = [n for n in names if len(rows.get(n, [])) >= 2]
    gen = np.random.default_rng(0)
    groups = []
    for n in kept:
        idx = gen.choice(rows[n], size=per_name, replace=len(rows[n]) < per_name)
        groups.append(idx)
    x = torch.from_numpy(images[np.concatenate(groups)]).permute(0, 3, 1, 2).float() / 127.5 - 1
    f = net(x).reshape(len(kept), per_name, -1)
    same = swap_distance(f[:, 0], f[:, 1])
    diff = swap_distance(f[:, 0], f.roll(1, dims=0)[:, 0])
    return {"names": len(kept), "seed_share": share(f), "d_z": same, "d_text": diff, "z_over_text": same / diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--models", default="", help="comma-separated names or paths (default: the bundled GANs)")
    ap.add_argument("--prompts", type=int, default=64, help="style-free validation names (P)")
    ap.add_argument("--seeds", type=int, default=8, help="seeds per name (S)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n, styles in style_names(args.data, "val").items() if len(styles) >= 2][: args.prompts]
    models = [m for m in args.models.split(",") if m] or [
        m for m in bundled_models() if m.startswith(("gigagan", "stylegan-t"))]
    net = EmojiNetFeatures()
    ref = analyse_data(args.data, names, net, per_name=args.seeds)
    rows = {m: analyse_model(m, names, args.seeds, net) for m in models}
    print(f"P = {len(names)} style-free validation names (each in >= 2 styles in the data), S = {args.seeds} seeds; "
          "emoji-net features\n")
    print("| source | seed share | d z | d t_global | d t_local | d text | z / text |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| data ({ref['names']} names; 'z' = another image of the name) | {ref['seed_share']:.3f} | "
          f"{ref['d_z']:.1f} | | | {ref['d_text']:.1f} | {ref['z_over_text']:.3f} |")
    for m, r in rows.items():
        print(f"| {m} | {r['seed_share']:.3f} | {r['d_z']:.1f} | {r['d_t_global']:.1f} | {r['d_t_local']:.1f} | "
              f"{r['d_text']:.1f} | {r['z_over_text']:.3f} |")
    for m, r in rows.items():
        print(f"\n{m}: seed share of each modulated layer's styles (coarse to fine)\n")
        print("| layer | style share |")
        print("| --- | ---: |")
        for lname, v in r["layers"]:
            print(f"| {lname} | {v:.3f} |")
        if r["cross"]:
            print(f"\n{m}: cross-attention (entropy / log #tokens; ||update|| / ||input||)\n")
            print("| layer | entropy | update |")
            print("| --- | ---: | ---: |")
            for lname, ent, rel in r["cross"]:
                print(f"| {lname} | {ent:.3f} | {rel:.3f} |")


if __name__ == "__main__":
    main()

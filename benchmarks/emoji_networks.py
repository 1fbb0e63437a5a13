"""Validation numbers of the bundled emoji networks (or other exports), for their model cards.

    python benchmarks/emoji_networks.py --data ../shared/data/emoji64.npz

emoji-clip: text->image and image->text retrieval top-1/top-5 over the whole validation split at once.
emoji-net: subcategory and style accuracy on the validation split.
"""

from __future__ import annotations

import argparse

import torch

from fastt2i.metrics import EmojiCLIPFeatures, EmojiNetFeatures
from fastt2i.metrics.sources import split_samples
from fastt2i.training.emoji import retrieval_topk, style_of


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--clip", default=None, help="emoji-clip export (default: bundled)")
    ap.add_argument("--net", default=None, help="emoji-net export (default: bundled)")
    ap.add_argument("--split-by", default="key", choices=["key", "emoji"])
    args = ap.parse_args()
    clip, net = EmojiCLIPFeatures(args.clip), EmojiNetFeatures(args.net).net
    img, txt = [], []
    for b in split_samples(args.data, "val", 64, split_by=args.split_by):
        img.append(clip.encode_image(b["image"]))
        txt.append(clip.encode_text(b["caption"]))
    r = retrieval_topk(torch.cat(img), torch.cat(txt))
    n = sum(len(x) for x in img)
    print(f"emoji-clip ({clip.identity}), {n} validation pairs (split by {args.split_by}):")
    print("| direction | top-1 | top-5 |\n| --- | ---: | ---: |")
    print(f"| text->image | {r['t2i_top1']:.3f} | {r['t2i_top5']:.3f} |\n| image->text | {r['i2t_top1']:.3f} | {r['i2t_top5']:.3f} |")
    sub_ok = sty_ok = total = 0
    subs, styles = list(net.config.subcategories), list(net.config.styles)
    for b in split_samples(args.data, "val", 64, caption_field="subcategories", split_by=args.split_by):
        ls, lt = net(b["image"])
        sub_ok += sum(subs[i] == c for i, c in zip(ls.argmax(1).tolist(), b["caption"]))
        sty_ok += sum(styles[i] == style_of(k) for i, k in zip(lt.argmax(1).tolist(), b["key"]))
        total += len(b["key"])
    print(f"\nemoji-net: {total} validation images: subcategory accuracy {sub_ok / total:.3f}, "
          f"style accuracy {sty_ok / total:.3f}")


if __name__ == "__main__":
    main()

"""Build the emoji image-text set (google/twitter/openmoji PNG+SVG at 64, SVG styles above) as WebDataset shards."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from tqdm import tqdm

from fastt2i.data.shards import write_shards
from fastt2i.errors import DataError
from fastt2i.utils.images import save_grid

# style -> (npm package, version, folder names accepted under --from DIR)
PACKAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "google": ("emoji-datasource-google", "16.0.0", ("google", "emoji-datasource-google")),
    "twitter": ("emoji-datasource-twitter", "16.0.0", ("twitter", "emoji-datasource-twitter")),
    "openmoji": ("openmoji", "17.0.0", ("openmoji",)),
    "twemoji": ("@twemoji/svg", "15.0.0", ("twemoji", "twemoji-svg", "@twemoji/svg", "svg")),
    "fluent": ("fluentui-emoji", "1.3.0", ("fluent", "fluentui-emoji")),
}
# packages used per size: 64 = the emoji64.npz recipe; above, only SVG sources (google ships no SVG)
PACKAGES_64 = ("google", "twitter", "openmoji")
PACKAGES_SVG = ("openmoji", "twemoji", "fluent")
STYLES_BY_SIZE = {"64": ["google", "twitter", "openmoji"], ">64": ["openmoji", "twitter", "fluent"]}
LICENCES = {
    "google": "Noto Emoji images, Apache-2.0 (Google)",
    "twitter": "Twemoji graphics, CC-BY-4.0 (attribution: Twitter, Inc. and other contributors)",
    "openmoji": "OpenMoji, CC-BY-SA-4.0 (attribution: OpenMoji, HfG Schwäbisch Gmünd)",
    "fluent": "Fluent Emoji, MIT (Microsoft); npm repackaging fluentui-emoji, MIT",
    "emoji-datasource": "emoji-datasource metadata, MIT (iamcal)",
}
# openmoji group -> emoji-datasource category, used when emoji-datasource is not loaded (sizes above 64)
GROUP_TO_CATEGORY = {
    "smileys-emotion": "Smileys & Emotion", "people-body": "People & Body", "component": "Component",
    "animals-nature": "Animals & Nature", "food-drink": "Food & Drink", "travel-places": "Travel & Places",
    "activities": "Activities", "objects": "Objects", "symbols": "Symbols", "flags": "Flags",
    "extras-openmoji": "Extras", "extras-unicode": "Extras",
}
FLUENT_TONES = {"light": "light skin tone", "medium-light": "medium-light skin tone", "medium": "medium skin tone",
                "medium-dark": "medium-dark skin tone", "dark": "dark skin tone"}


def norm_hex(h: str) -> str:
    """Uppercase codepoints without FE0F (variation selector), the join key between packages."""
    return h.upper().replace("-FE0F", "").replace("FE0F-", "")


def slug(s: str) -> str:
    """`thumbs up: light skin tone` -> `thumbs-up-light-skin-tone` (Fluent file naming)."""
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def emoji_caption(annotation: str, category: str, style: str) -> str:
    """The emoji64 caption: "<CLDR annotation, ': ' -> ', '>, <category lower>, <style> style"."""
    return f"{annotation.replace(': ', ', ')}, {category.lower()}, {style} style"


def cache_dir() -> Path:
    """Where fetched npm packages are kept ($FASTT2I_CACHE/npm, default ~/.cache/fastt2i/npm)."""
    return Path(os.environ.get("FASTT2I_CACHE", Path.home() / ".cache" / "fastt2i")) / "npm"


def fetch_package(name: str, version: str, dest: Path) -> Path:
    """`npm pack name@version` into dest, unpack it, return the unpacked `package` folder (cached)."""
    short = name.lstrip("@").replace("/", "-")
    final = dest / f"{short}-{version}"
    if (final / "package" / "package.json").exists():
        return final / "package"
    dest.mkdir(parents=True, exist_ok=True)
    hint = "or pass --from DIR holding unpacked packages as DIR/<name>/package"
    try:
        r = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent", "--pack-destination", str(dest)],
                           capture_output=True, text=True, timeout=600)
    except FileNotFoundError as e:
        raise DataError(f"npm is not installed (needed to fetch {name}@{version}); install Node.js, {hint}") from e
    except subprocess.TimeoutExpired as e:
        raise DataError(f"npm pack {name}@{version} timed out (offline?); {hint}") from e
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.strip().endswith(".tgz")]
    if r.returncode != 0 or not lines:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"npm pack {name}@{version} failed ({last}); offline? {hint}")
    tgz = dest / lines[-1].strip()
    tmp = dest / f".{short}-{version}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tgz) as tf:
        tf.extractall(tmp, filter="data")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final / "package"


def find_packages(styles: tuple[str, ...], from_dir: str | None) -> dict[str, Path]:
    """style -> unpacked package folder, from --from DIR or fetched with npm into the cache."""
    out = {}
    for s in styles:
        name, ver, dirs = PACKAGES[s]
        if from_dir:
            cands = [Path(from_dir) / d / "package" for d in dirs]
            hit = next((c for c in cands if c.is_dir()), None)
            if hit is None:
                raise DataError(f"--from {from_dir}: no {name} package (expected {cands[0]})")
            out[s] = hit
        else:
            out[s] = fetch_package(name, ver, cache_dir())
    return out


@dataclass
class Job:
    """One image to render: its source file and its record."""

    kind: str  # "png" or "svg"
    src: str
    key: str
    caption: str
    meta: dict[str, str] = field(default_factory=dict)


def _render(args: tuple[str, str, int]) -> bytes | str:
    """(kind, path, size) -> PNG bytes of an RGB image on white, or an error string (never raises in a worker)."""
    kind, src, size = args
    try:
        if kind == "svg":
            import resvg_py

            im = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_path=src, width=size, height=size))))
        else:
            im = Image.open(src)
        im = im.convert("RGBA")
        if im.size != (size, size):
            im = im.resize((size, size), Image.LANCZOS)
        bg = Image.new("RGBA", (size, size), (255, 255, 255, 255))
        rgb = Image.alpha_composite(bg, im).convert("RGB")
        bio = io.BytesIO()
        rgb.save(bio, format="PNG", compress_level=6)
        return bio.getvalue()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


def _om_record(o: dict[str, Any], category: str, style: str, hexcode: str, uname: str = "") -> dict[str, str]:
    return {"style": style, "category": category, "subcategory": o.get("subgroups", ""), "hexcode": hexcode,
            "unicode_name": uname, "annotation": o["annotation"],
            "keywords": ", ".join(t for t in [o.get("tags", ""), o.get("openmoji_tags", "")] if t)}


def plan_jobs(pkgs: dict[str, Path], size: int) -> tuple[list[Job], dict[str, Any]]:
    """The list of images to render for `size`, and notes (unmatched files per style)."""
    om = json.loads((pkgs["openmoji"] / "data" / "openmoji.json").read_text(encoding="utf-8"))
    om_by_hex = {norm_hex(x["hexcode"]): x for x in om}
    notes: dict[str, Any] = {"unmatched": {}}
    cat_by_group = dict(GROUP_TO_CATEGORY)
    jobs: list[Job] = []

    def add(kind: str, src: Path, o: dict[str, Any], cat: str, style: str, hexcode: str, uname: str = "") -> None:
        rec = _om_record(o, cat, style, hexcode, uname)
        jobs.append(Job(kind, str(src), f"{style}_{hexcode.lower()}", emoji_caption(o["annotation"], cat, style), rec))

    if size == 64:
        ed = json.loads((pkgs["google"] / "emoji.json").read_text(encoding="utf-8"))
        for e in ed:  # emoji-datasource categories, keyed by openmoji group (as build_emoji64.py)
            o = om_by_hex.get(norm_hex(e["unified"]))
            if o is not None:
                cat_by_group[o["group"]] = e["category"]
        for style in ("google", "twitter"):
            d = json.loads((pkgs[style] / "emoji.json").read_text(encoding="utf-8"))
            missing = 0
            for e in d:
                variants = [(e["unified"], e["image"], e[f"has_img_{style}"])]
                variants += [(v["unified"], v["image"], v[f"has_img_{style}"])
                             for v in (e.get("skin_variations") or {}).values()]
                for uni, fn, has in variants:
                    o = om_by_hex.get(norm_hex(uni))
                    if not has:
                        continue
                    if o is None:
                        missing += 1
                        continue
                    add("png", pkgs[style] / "img" / style / "64" / fn, o, e["category"], style, uni, e["name"].lower())
            notes["unmatched"][style] = missing
    else:
        tw = pkgs["twemoji"]
        missing = []
        for p in sorted(tw.glob("*.svg")):
            o = om_by_hex.get(norm_hex(p.stem))
            if o is None:
                missing.append(p.stem)
                continue
            add("svg", p, o, cat_by_group.get(o["group"], "Extras"), "twitter", p.stem)
        notes["unmatched"]["twitter"] = len(missing)
    for o in om:
        add("svg", pkgs["openmoji"] / "color" / "svg" / f"{o['hexcode']}.svg", o,
            cat_by_group.get(o["group"], "Extras"), "openmoji", o["hexcode"])
    if size != 64:
        by_slug = {slug(o["annotation"]): o for o in om}
        icons = pkgs["fluent"] / "icons" / "modern"
        missing, seen = [], set()
        for p in sorted(icons.glob("*.svg")):
            stem, o = p.stem, by_slug.get(p.stem)
            if o is None and stem.endswith("-default"):
                o = by_slug.get(stem[: -len("-default")])
            if o is None:
                for suf, tone in FLUENT_TONES.items():
                    if stem.endswith("-" + suf):
                        o = by_slug.get(slug(f"{stem[: -len(suf) - 1]}: {tone}"))
                        if o is not None:
                            break
            if o is None or o["hexcode"] in seen:
                missing.append(stem)
                continue
            seen.add(o["hexcode"])
            add("svg", p, o, cat_by_group.get(o["group"], "Extras"), "fluent", o["hexcode"])
        notes["unmatched"]["fluent"] = len(missing)
        notes["unmatched_examples"] = {"fluent": missing[:10]}
    keys = Counter(j.key for j in jobs)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise DataError(f"emoji builder: duplicate keys {dup[:3]} (package layout changed?)")
    return jobs, notes


def build_emoji(size: int, out: str | os.PathLike, *, from_dir: str | None = None, samples_per_shard: int = 2000,
                workers: int | None = None, force: bool = False, progress: bool = True,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the emoji set as shards in `out` (written to a temporary folder, renamed at the end).

    Args:
        size: 64 (google + twitter PNGs + OpenMoji SVG: 12,067 samples like emoji64.npz) or larger (SVG styles only:
            openmoji, twitter from @twemoji/svg, fluent from fluentui-emoji).
        out: output folder: shard-*.tar, summary.json, grid.png.
        from_dir: folder holding unpacked packages as DIR/<name>/package (else `npm pack` into the cache).
        samples_per_shard: records per tar.
        workers: rendering processes (default: CPU count).
        force: replace an existing non-empty `out`.

    Returns:
        The summary dict (also written to out/summary.json).
    """
    t0 = time.time()
    if size < 8:
        raise DataError(f"--size must be >= 8, got {size}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(f"{out} exists and is not empty (pass --force to replace it)")
    styles = PACKAGES_64 if size == 64 else PACKAGES_SVG
    pkgs = find_packages(styles, from_dir)
    jobs, notes = plan_jobs(pkgs, size)
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    failed: list[str] = []
    grid_every = max(1, len(jobs) // 64)
    grid_imgs: list[Image.Image] = []
    grid_caps: list[str] = []
    counts: Counter = Counter()
    cats: Counter = Counter()
    nproc = workers or os.cpu_count() or 1

    def records():
        args = [(j.kind, j.src, size) for j in jobs]
        bar = tqdm(total=len(jobs), desc=f"emoji {size}px", unit="img", disable=not progress)
        ctx = get_context("fork") if hasattr(os, "fork") else get_context()
        with ctx.Pool(nproc) if nproc > 1 else _Serial() as pool:
            for i, res in enumerate(pool.imap(_render, args, chunksize=16)):
                bar.update(1)
                j = jobs[i]
                if isinstance(res, str):
                    failed.append(f"{j.key}: {res}")
                    continue
                counts[j.meta["style"]] += 1
                cats[j.meta["category"]] += 1
                if i % grid_every == 0 and len(grid_imgs) < 64:
                    im = Image.open(io.BytesIO(res)).convert("RGB")
                    grid_imgs.append(im if size <= 128 else im.resize((128, 128), Image.LANCZOS))
                    grid_caps.append(j.caption)
                yield {"key": j.key, "image": res, "caption": j.caption, "meta": j.meta}
        bar.close()

    try:
        shards = write_shards(records(), tmp, samples_per_shard=samples_per_shard, prefix="emoji")
        if grid_imgs:
            save_grid(grid_imgs, tmp / "grid.png", nrow=8, captions=grid_caps)
        summary = {
            "size": size, "total": sum(counts.values()), "styles": dict(counts), "categories": dict(cats.most_common()),
            "styles_at_this_size": list(counts), "styles_by_size": STYLES_BY_SIZE,
            "packages": {PACKAGES[s][0]: PACKAGES[s][1] for s in styles}, "failed": failed,
            "unmatched_source_files": notes["unmatched"], "unmatched_examples": notes.get("unmatched_examples", {}),
            "shards": [p.name for p in shards], "samples_per_shard": samples_per_shard,
            "key_format": "<style>_<hexcode lowercase>", "image_format": "png (RGB, alpha composited on white)",
            "caption_format": "<CLDR annotation with ': ' -> ', '>, <category lower>, <style> style",
            "licences": {k: v for k, v in LICENCES.items() if k in counts or k == "emoji-datasource"},
            "seconds": round(time.time() - t0, 1),
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        if out.exists():
            old = out.parent / f".{out.name}.old{os.getpid()}"
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if failed:
        log(f"warning: {len(failed)} images failed to render (listed in summary.json), e.g. {failed[0]}")
    return summary


class _Serial:
    """A stand-in for multiprocessing.Pool with one process."""

    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *a: Any) -> None:
        return None

    def imap(self, fn: Callable, it: Any, chunksize: int = 1):
        return map(fn, it)

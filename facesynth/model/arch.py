"""The generator's architecture as plain data: the constructor kwargs of UNetGenerator.

An export ships weights (a state_dict, loaded with weights_only=True) and this dict in
generator.json under "arch"; loading rebuilds `UNetGenerator(**arch)` from code that is
installed here, so no code ever comes from a model file (generator.py: `generator_arch` reads
every constructor parameter back from an instance, `build_generator` builds one after the checks
here); export.py checks that the rebuilt net computes exactly what the original does.

An "arch" from a file someone sent is checked before anything is built: plain values in
range (`check_arch`), and the memory the net would take, counted from the arch alone
(`generator_memory`), within a budget (`DEFAULT_MEMORY_BUDGET`, a parameter of every loader):
a size 4096, ngf 1024 net inside the ranges has 19 G parameters. This module imports no torch,
so a crafted file is refused before torch is even loaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


from facesynth.errors import ModelFileError

UPSAMPLE = ("transpose", "resize")
NORMS = ("batch", "instance", "none")
#: UNetGenerator's keyword arguments and their defaults (a test keeps the two equal)
ARCH_DEFAULTS = {"size": 256, "ngf": 64, "in_ch": 1, "out_ch": 4, "dropout": 0.5, "upsample": "transpose",
                 "norm": "batch"}
SCALARS = (str, int, float, bool, type(None))
# plausible ranges of the numeric kwargs (checked before anything is allocated)
LIMITS = {"size": (32, 4096), "ngf": (1, 1024), "in_ch": (1, 16), "out_ch": (1, 16), "dropout": (0.0, 1.0)}
_INTEGERS = ("size", "ngf", "in_ch", "out_ch")
_CHOICES = {"upsample": UPSAMPLE, "norm": NORMS}
GiB = 1 << 30
#: memory a generator may take to be loaded and run once (weights twice: the module and the
#: state_dict read from the file, plus every activation of a forward pass); the fast live model
#: needs under 10 MiB, the original's 512 px ngf 64 about 0.5 GiB
DEFAULT_MEMORY_BUDGET = 4 * GiB


def num_downs_for(size: int) -> int:
    """log2(size): how many stride-2 convolutions bring `size` down to 1x1."""
    n = int(round(math.log2(size))) if size > 0 else 0
    if size < 32 or 2 ** n != size:
        raise ValueError(f"U-Net size must be a power of two >= 32 (got {size})")
    return n


def check_arch(arch: Any, where: str) -> dict[str, Any]:
    """Every UNetGenerator kwarg (defaults filled in) when `arch` is a dict of known, plain,
    in-range values; else ModelFileError naming `where` and the argument. Builds nothing."""
    if not isinstance(arch, dict):
        raise ModelFileError(f"{where}: 'arch' must be a dict of UNetGenerator arguments, not {type(arch).__name__}")
    unknown = sorted(set(arch) - set(ARCH_DEFAULTS))
    if unknown:
        raise ModelFileError(f"{where}: unknown generator arguments {unknown} (known: {sorted(ARCH_DEFAULTS)}); "
                             "the model was made by another facesynth version")
    bad = sorted(k for k, v in arch.items() if not isinstance(v, SCALARS))
    if bad:
        raise ModelFileError(f"{where}: generator arguments {bad} are not plain values")
    full = {**ARCH_DEFAULTS, **arch}
    for key, (lo, hi) in LIMITS.items():  # a crafted file must not make us allocate without bound
        v = full.get(key)
        if isinstance(v, bool) or not isinstance(v, int if key in _INTEGERS else (int, float)) or not lo <= v <= hi:
            kind = "an integer" if key in _INTEGERS else "a number"
            raise ModelFileError(f"{where}: generator argument {key}={v!r} is outside [{lo}, {hi}] "
                                 f"(it must be {kind} in that range)")
    try:
        num_downs_for(full["size"])
    except ValueError as e:
        raise ModelFileError(f"{where}: generator argument size={full['size']}: {e}") from None
    for key, allowed in _CHOICES.items():
        if full.get(key) not in allowed:
            raise ModelFileError(f"{where}: generator argument {key}={full.get(key)!r} is not one of {list(allowed)}")
    return full


@dataclass
class GeneratorMemory:
    """What a UNetGenerator of some arch holds, counted from the arch (no net built)."""

    parameters: int        # trainable numbers
    state_bytes: int       # its state_dict: parameters and BatchNorm buffers (float32, int64 counters)
    activation_bytes: int  # every tensor one forward pass of one image makes (an upper bound: none freed)

    def total(self, batch: int = 1) -> int:
        """Load (the module + the state_dict read from a file) and run a batch."""
        return 2 * self.state_bytes + batch * self.activation_bytes


def generator_memory(arch: dict) -> GeneratorMemory:
    """The memory of UNetGenerator(**arch) from its layer shapes (generator.py's layout)."""
    a = check_arch(arch, "arch")
    s, ngf, in_ch, out_ch, norm, up = a["size"], a["ngf"], a["in_ch"], a["out_ch"], a["norm"], a["upsample"]
    n = num_downs_for(s)
    ch = [ngf * min(2 ** i, 8) for i in range(n)]
    params = buffers = 0
    acts = in_ch * s * s + 3 * out_ch * s * s  # input; output, mask and masked output

    def norm_layer(c: int) -> None:
        nonlocal params, buffers
        if norm != "none":
            params += 2 * c
        if norm == "batch":
            buffers += 2 * c * 4 + 8  # running mean and variance, num_batches_tracked (int64)

    for i in range(n):  # down: 4x4 stride-2 convolutions without bias
        side = s >> (i + 1)
        params += (in_ch if i == 0 else ch[i - 1]) * ch[i] * 16
        acts += ch[i] * side * side
        if 0 < i < n - 1:
            norm_layer(ch[i])
            acts += ch[i] * side * side
    for i in range(n):  # up: transposed 4x4 or nearest 2x + 3x3, after a concat with the skip
        c_in = ch[i] * (1 if i == n - 1 else 2)
        c_out = out_ch if i == 0 else ch[i - 1]
        side = s >> i
        params += c_in * c_out * (16 if up == "transpose" else 9)
        if i == 0 or norm == "none":
            params += c_out  # bias
        acts += c_in * (side // 2) ** 2 + c_out * side * side + (c_in * side * side if up == "resize" else 0)
        if i > 0:
            norm_layer(c_out)
            acts += c_out * side * side
    return GeneratorMemory(params, 4 * params + buffers, 4 * acts)


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB / 10 else f"{n / (1 << 20):.1f} MiB"


def check_memory(arch: dict, where: str, budget: int = DEFAULT_MEMORY_BUDGET, batch: int = 1) -> GeneratorMemory:
    """The arch's memory when loading and running it fits `budget` bytes; else ModelFileError with the estimate."""
    mem = generator_memory(arch)
    need = mem.total(batch)
    if need > budget:
        a = check_arch(arch, where)
        raise ModelFileError(
            f"{where}: the generator it describes (size {a['size']}, ngf {a['ngf']}: {mem.parameters / 1e9:.2f} G "
            f"parameters) needs about {_gib(need)} to load and run ({_gib(mem.state_bytes)} of weights, held twice "
            f"while loading, and {_gib(batch * mem.activation_bytes)} of activations), more than the memory budget of "
            f"{_gib(budget)}; refused before building it. If this machine has the memory and you trust the model, "
            "raise the budget (model eval --memory-budget-gb)")
    return mem

"""The generator's architecture as plain data: the constructor kwargs of UNetGenerator.

An export ships weights (a state_dict, loaded with weights_only=True) and this dict in
generator.json under "arch"; loading rebuilds `UNetGenerator(**arch)` from code that is
installed here, so no code ever comes from a model file. `generator_arch` reads every
constructor parameter back from the instance (attributes of the same name, else the
default); export.py checks that the rebuilt net computes exactly what the original does.
"""
from __future__ import annotations

import inspect
from typing import Any

from facesynth.errors import ModelFileError
from facesynth.model.generator import UNetGenerator

_SCALARS = (str, int, float, bool, type(None))
# plausible ranges of the numeric kwargs (checked before anything is allocated)
LIMITS = {"size": (32, 4096), "ngf": (1, 1024), "in_ch": (1, 16), "out_ch": (1, 16), "dropout": (0.0, 1.0)}


def constructor_params() -> dict[str, inspect.Parameter]:
    sig = inspect.signature(UNetGenerator.__init__)
    return {n: p for n, p in sig.parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def generator_arch(gen: UNetGenerator) -> dict[str, Any]:
    """{kwarg: value} for every UNetGenerator constructor parameter, as JSON scalars."""
    given = getattr(gen, "arch", None)
    if isinstance(given, dict):  # a generator that records its own kwargs
        return {k: v for k, v in given.items() if isinstance(v, _SCALARS)}
    arch = {}
    for name, p in constructor_params().items():
        value = getattr(gen, name, p.default)
        if not isinstance(value, _SCALARS):  # an attribute that is a layer, not the kwarg
            value = p.default
        if value is not inspect.Parameter.empty:
            arch[name] = value
    return arch


def build_generator(arch: Any, where: str) -> UNetGenerator:
    """UNetGenerator(**arch), refusing anything that is not a plain dict of known scalar kwargs."""
    if not isinstance(arch, dict):
        raise ModelFileError(f"{where}: 'arch' must be a dict of UNetGenerator arguments, not {type(arch).__name__}")
    known = constructor_params()
    unknown = sorted(set(arch) - set(known))
    if unknown:
        raise ModelFileError(f"{where}: unknown generator arguments {unknown} (known: {sorted(known)}); "
                             "the model was made by another facesynth version")
    bad = sorted(k for k, v in arch.items() if not isinstance(v, _SCALARS))
    if bad:
        raise ModelFileError(f"{where}: generator arguments {bad} are not plain values")
    for key, (lo, hi) in LIMITS.items():  # a crafted file must not make us allocate without bound
        v = arch.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
            raise ModelFileError(f"{where}: generator argument {key}={v!r} is outside [{lo}, {hi}]")
    try:
        return UNetGenerator(**arch)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: cannot build the generator from {arch}: {e}") from None

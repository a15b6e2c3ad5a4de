"""Graph-file rules about the store: where `store.path` may point (checked without writing).

A store path must be a new directory or an existing facesynth store, so a typo or `/etc`
is reported by `graph validate` (at store.path, or at the --set that gave it) before any
run could write into, or `--restart` could empty, a directory facesynth did not make.
The graph `name` rule (a plain name, never a path) is in spec.py.
"""
from __future__ import annotations

from typing import Any

from facesynth.graph.spec import GraphSpec
from facesynth.store.paths import store_path_problem


def store_problems(spec: GraphSpec, data: dict[str, Any]) -> list[tuple[tuple, str, str]]:
    """(data path, message, hint) for each problem with the graph's store path."""
    if spec.store is None:
        return []
    path = spec.store_path()
    problem = store_path_problem(path) if path else "store.path is empty"
    if problem is None:
        return []
    raw = data.get("store")
    where = ("store", "path") if isinstance(raw, dict) and "path" in raw else ("store",)
    return [(where, problem, "give a new directory (e.g. data_store/{name}.zarr) or an existing facesynth store")]

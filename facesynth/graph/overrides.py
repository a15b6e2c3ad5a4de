"""`--set key=value` overrides, applied to the parsed data before validation.

Paths are dotted: `nodes.<node id>.params.epochs=2`, `store.chunk_frames=4`. Values are YAML
scalars or flow collections (`--set nodes.cam.params.frames={train: 8, eval: 2}`).
"""
from __future__ import annotations

import copy
from typing import Any

from facesynth.errors import Problem
from facesynth.graph.yaml_positions import YamlSyntaxError, load_located

SET_FILE = "--set"


def apply_overrides(data: Any, overrides: list[str]) -> tuple[Any, list[Problem], dict[tuple, int]]:
    """Return (new data, problems, {data path: index of the --set that wrote it})."""
    data = copy.deepcopy(data) if isinstance(data, dict) else {}
    problems: list[Problem] = []
    origin: dict[tuple, int] = {}
    for i, text in enumerate(overrides, start=1):
        if "=" not in text:
            problems.append(Problem(SET_FILE, i, 1, f"override '{text}' has no '='", "write --set key.path=value"))
            continue
        key, raw = text.split("=", 1)
        try:  # the same guarded parser as graph files: no tags, bounded aliases and depth
            value = load_located(raw).data if raw.strip() else ""
        except YamlSyntaxError as exc:
            problems.append(Problem(SET_FILE, i, len(key) + 1 + exc.col, f"value '{raw}' is not valid: {exc.message}",
                                    exc.hint))
            continue
        parts = [p for p in key.strip().split(".")]
        if not parts or not all(parts):
            problems.append(Problem(SET_FILE, i, 1, f"bad key path '{key}'", "e.g. nodes.train.params.epochs"))
            continue
        cursor: Any = data
        path: list = []
        ok = True
        for j, part in enumerate(parts[:-1]):
            if path == ["nodes"] and isinstance(cursor, list):
                idx = next((k for k, n in enumerate(cursor) if isinstance(n, dict) and n.get("id") == part), None)
                if idx is None:
                    ids = [n.get("id") for n in cursor if isinstance(n, dict)]
                    problems.append(Problem(SET_FILE, i, len(".".join(parts[:j])) + 2,
                                            f"no node with id '{part}'", f"node ids: {', '.join(map(str, ids))}"))
                    ok = False
                    break
                cursor, path = cursor[idx], path + [idx]
                continue
            if not isinstance(cursor, dict):
                problems.append(Problem(SET_FILE, i, 1, f"'{'.'.join(parts[:j])}' is not a mapping"))
                ok = False
                break
            cursor = cursor.setdefault(part, {})
            path.append(part)
        if not ok:
            continue
        if not isinstance(cursor, dict):
            problems.append(Problem(SET_FILE, i, 1, f"'{'.'.join(parts[:-1])}' is not a mapping"))
            continue
        cursor[parts[-1]] = value
        origin[tuple(path + [parts[-1]])] = i
    return data, problems, origin

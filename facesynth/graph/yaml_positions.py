"""YAML -> plain Python data plus the line:col of every key and value.

Graph files must point at the exact place of each problem, so we compose the YAML node
tree (safe: no tags are constructed) and keep a map from a path of keys/indices to its
1-based (line, col). Duplicate keys are problems too (plain YAML silently keeps the last).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple  # a path into the data: ("nodes", 2, "params", "epochs")


@dataclass
class Located:
    """Parsed data and where each piece came from."""

    data: Any
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[tuple, int, int]] = field(default_factory=list)

    def where(self, path: tuple, key: bool = False) -> tuple[int, int]:
        """Best known position of `path` (falls back to its nearest located parent)."""
        table = self.key_positions if key else self.positions
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), (1, 1))


class YamlSyntaxError(Exception):
    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


def _scalar(node: yaml.ScalarNode) -> Any:
    # resolve the scalar exactly as safe_load would (ints, floats, bools, null, strings)
    return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value


def load_located(text: str) -> Located:
    """Parse YAML text; raise YamlSyntaxError with a position on malformed input."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(line, col, f"YAML syntax: {exc.problem or exc}") from None
    out = Located(data=None)
    if root is None:
        out.data = None
        return out

    def walk(node: yaml.Node, path: tuple) -> Any:
        out.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict = {}
            for knode, vnode in node.value:
                key = _scalar(knode) if isinstance(knode, yaml.ScalarNode) else str(knode.value)
                kpath = path + (key,)
                kpos = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                if key in result:
                    out.duplicates.append((kpath, *kpos))
                out.key_positions[kpath] = kpos
                result[key] = walk(vnode, kpath)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [walk(v, path + (i,)) for i, v in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        raise YamlSyntaxError(out.positions[path][0], out.positions[path][1], "unsupported YAML node")

    out.data = walk(root, ())
    return out

"""YAML -> plain Python data plus the line:col of every key and value.

Graph files must point at the exact place of each problem, so we compose the YAML node
tree and keep a map from a path of keys/indices to its 1-based (line, col). Duplicate keys
are problems too (plain YAML silently keeps the last).

Nothing in a graph file is trusted: before any tree is built, one streaming pass over the
parser's events refuses tags other than the plain core ones (`!!python/...` and friends: no
Python object is ever constructed), nesting deeper than MAX_DEPTH, and aliases whose
expansion would pass MAX_VALUES values (a 500-byte "billion laughs" file expands to 10^9).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple  # a path into the data: ("nodes", 2, "params", "epochs")

MAX_DEPTH = 64  # nested mappings/sequences; the shipped graphs use 4
MAX_VALUES = 20_000  # scalars + collections once aliases are expanded; the shipped graphs have ~100

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: fast, same results
_CORE = "tag:yaml.org,2002:"
_EXPLICIT_TAGS = {"!", *(_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq"))}
_CONSTRUCTOR = yaml.constructor.SafeConstructor()  # only its scalar constructors are used (int, float, bool, ...)
_SYNTAX_HINT = "check indentation and quoting"


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
    def __init__(self, line: int, col: int, message: str, hint: str = _SYNTAX_HINT):
        super().__init__(message)
        self.line, self.col, self.message, self.hint = line, col, message, hint


def _at(mark: Any, message: str, hint: str = _SYNTAX_HINT) -> YamlSyntaxError:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return YamlSyntaxError(line, col, message, hint)


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


def check_events(text: str, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """Refuse unsafe tags, deep nesting and alias bombs from the event stream, before composing.

    Each open collection tracks [values inside it, its depth]; each anchor remembers the same for
    what it names, so an alias adds its full expanded size without anything being expanded.
    """
    anchors: dict[str, tuple[int, int]] = {}
    stack: list[list[int]] = []
    anchor_of: list[str | None] = []
    total = 0

    def add(values: int, depth: int, mark: Any) -> None:
        nonlocal total
        total += values
        if total > max_values:
            raise _at(mark, f"the file holds more than {max_values:,} YAML values once aliases are expanded",
                      "graph files are small; remove the aliases (&anchor / *alias) that repeat large parts")
        if len(stack) + depth > max_depth:
            raise _at(mark, f"YAML nested deeper than {max_depth} levels (through aliases)",
                      "graph files need a few levels; flatten the structure")
        if stack:
            stack[-1][0] += values
            stack[-1][1] = max(stack[-1][1], depth + 1)

    for ev in yaml.parse(text, Loader=_LOADER):
        tag = getattr(ev, "tag", None)
        if tag is not None and tag not in _EXPLICIT_TAGS:
            raise _at(ev.start_mark, f"YAML tag '{_short(tag)}' is not allowed in a graph file",
                      "graph files hold plain strings, numbers, booleans, lists and mappings; remove the tag")
        if isinstance(ev, yaml.AliasEvent):
            if ev.anchor not in anchors:
                raise _at(ev.start_mark, f"alias '*{ev.anchor}' names no anchor defined before it",
                          f"define '&{ev.anchor}' earlier in the file (an anchor cannot contain its own alias)")
            add(*anchors[ev.anchor], ev.start_mark)
        elif isinstance(ev, yaml.ScalarEvent):
            add(1, 0, ev.start_mark)
            if ev.anchor:
                anchors[ev.anchor] = (1, 0)
        elif isinstance(ev, yaml.CollectionStartEvent):
            if len(stack) >= max_depth:
                raise _at(ev.start_mark, f"YAML nested deeper than {max_depth} levels",
                          "graph files need a few levels; flatten the structure")
            total += 1
            stack.append([1, 1])
            anchor_of.append(ev.anchor)
        elif isinstance(ev, yaml.CollectionEndEvent):
            values, depth = stack.pop()
            anchor = anchor_of.pop()
            if anchor:
                anchors[anchor] = (values, depth)
            if stack:
                stack[-1][0] += values
                stack[-1][1] = max(stack[-1][1], depth + 1)


def _scalar(node: yaml.ScalarNode) -> Any:
    """The scalar's value exactly as safe_load resolves it (ints, floats, bools, null, strings)."""
    if node.tag == _CORE + "merge":
        raise _at(node.start_mark, "YAML merge keys ('<<') are not supported in graph files",
                  "write the keys out in full")
    construct = _CONSTRUCTOR.yaml_constructors.get(node.tag)
    if node.tag == _CORE + "str" or construct is None:
        return node.value
    try:
        return construct(_CONSTRUCTOR, node)
    except (ValueError, OverflowError, yaml.YAMLError) as exc:  # e.g. an int of 10,000 digits
        raise _at(node.start_mark, f"cannot read value '{node.value[:40]}': {str(exc).split(';')[0]}",
                  "quote it to make it a string") from None


def _compose(text: str) -> yaml.Node | None:
    try:
        check_events(text)
        return yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if "nesting depth" in str(exc.problem):  # libyaml's own limit (1000), hit while scanning ahead
            raise _at(mark, f"YAML nested deeper than {MAX_DEPTH} levels",
                      "graph files need a few levels; flatten the structure") from None
        raise _at(mark, f"YAML syntax: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:  # reader errors carry a character offset, not a mark
        pos = getattr(exc, "position", 0) or 0
        line = text.count("\n", 0, pos) + 1
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # not its "in <string>" line
        raise YamlSyntaxError(line, pos - (text.rfind("\n", 0, pos) + 1) + 1, f"YAML: {first}") from None


def load_located(text: str) -> Located:
    """Parse YAML text; raise YamlSyntaxError with a position on malformed or unsafe input."""
    root = _compose(text)
    out = Located(data=None)
    if root is None:
        return out

    def walk(node: yaml.Node, path: tuple) -> Any:
        out.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    raise _at(knode.start_mark, "a mapping key must be a plain value, not a list or mapping",
                              "write `key: value`")
                key = _scalar(knode)
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
        raise _at(node.start_mark, "unsupported YAML node")

    out.data = walk(root, ())
    return out

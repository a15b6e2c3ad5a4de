"""Load a graph file and report every problem in it at once, each with file:line:col and a hint.

Order: YAML syntax -> --set overrides -> structure (pydantic) -> meaning (kinds, params,
ports, wiring, cycles). `facesynth graph validate` runs exactly this and never starts Ray.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from facesynth.errors import GraphError, Problem
from facesynth.graph.overrides import SET_FILE, apply_overrides
from facesynth.graph.spec import EdgeSpec, GraphSpec, NodeSpec, split_ref
from facesynth.graph.store_rules import store_problems
from facesynth.graph.graph_file import load_graph_file
from facesynth.graph.yaml_positions import Located
from facesynth.nodes import registry


@dataclass
class LoadedGraph:
    spec: GraphSpec
    file: str
    located: Located


class _Reporter:
    """Collects problems, turning data paths into positions (file or --set)."""

    def __init__(self, file: str, located: Located, origin: dict[tuple, int]):
        self.file, self.located, self.origin = file, located, origin
        self.problems: list[Problem] = []

    def add(self, path: tuple, message: str, hint: str = "", key: bool = False) -> None:
        p = tuple(path)
        for k in range(len(p), 0, -1):
            if p[:k] in self.origin:
                self.problems.append(Problem(SET_FILE, self.origin[p[:k]], 1, message, hint))
                return
        line, col = self.located.where(p, key=key)
        self.problems.append(Problem(self.file, line, col, message, hint))


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else ""


def _field_hint(model: type[BaseModel], name: str) -> str:
    """Valid range / choices of a pydantic field, read from its JSON schema."""
    try:
        prop = model.model_json_schema().get("properties", {}).get(name, {})
    except Exception:  # schema generation can fail for exotic types; no hint then
        return ""
    bits = []
    for options in [prop] + prop.get("anyOf", []):
        if "enum" in options:
            bits.append("one of " + ", ".join(map(repr, options["enum"])))
        if "const" in options:
            bits.append(repr(options["const"]))
        lo = options.get("minimum", options.get("exclusiveMinimum"))
        hi = options.get("maximum", options.get("exclusiveMaximum"))
        if lo is not None or hi is not None:
            bits.append(f"range {lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}")
    if "default" in prop:
        bits.append(f"default {prop['default']!r}")
    return "; ".join(bits)


def _report_validation(rep: _Reporter, exc: ValidationError, model: type[BaseModel], base: tuple, data: Any) -> None:
    for err in exc.errors():
        # keep only the loc parts that exist in the data (pydantic adds union member names)
        path, cursor = list(base), data
        loc = list(err["loc"])
        for part in loc:
            if isinstance(cursor, dict) and part in cursor:
                cursor = cursor[part]
                path.append(part)
            elif isinstance(cursor, list) and isinstance(part, int) and part < len(cursor):
                cursor = cursor[part]
                path.append(part)
            elif err["type"] == "extra_forbidden" and part == loc[-1]:
                path.append(part)
            else:
                break
        name = str(loc[-1]) if loc else ""
        if err["type"] == "extra_forbidden":
            owner = model
            fields = list(owner.model_fields) if len(loc) == 1 else []
            hint = _did_you_mean(name, fields) or (f"valid keys: {', '.join(fields)}" if fields else "")
            rep.add(tuple(path), f"unknown key '{name}'", hint, key=True)
        elif err["type"] == "missing":
            rep.add(tuple(path), f"missing required key '{name}'")
        else:
            where = ".".join(str(p) for p in loc if not str(p)[0].isupper())
            hint = _field_hint(model, str(loc[0])) if len(loc) == 1 else ""
            rep.add(tuple(path), f"{where}: {err['msg']}", hint)


def _check_nodes(rep: _Reporter, nodes: list[tuple[int, NodeSpec]], spec_store: bool) -> None:
    ids = [n.id for _, n in nodes]
    by_id = {n.id: n for _, n in nodes}
    known = registry.kinds()
    for i, node in nodes:
        base = ("nodes", i)
        cls = known.get(node.kind)
        if cls is None:
            hint = _did_you_mean(node.kind, list(known)) or "see `facesynth nodes` for the kinds"
            rep.add(base + ("kind",), f"unknown node kind '{node.kind}'", hint)
            continue
        try:
            cls.Params.model_validate(node.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = [p for p in err["loc"]]
                name = str(loc[0]) if loc else ""
                if err["type"] == "extra_forbidden":
                    fields = list(cls.Params.model_fields)
                    hint = _did_you_mean(name, fields) or f"params of {node.kind}: {', '.join(fields) or 'none'}"
                    rep.add(base + ("params", *loc), f"unknown param '{name}' for {node.kind}", hint, key=True)
                else:
                    rep.add(base + ("params", *loc), f"param '{'.'.join(map(str, loc))}' of {node.kind}: {err['msg']}",
                            _field_hint(cls.Params, name))
        if cls.max_replicas is not None and node.replicas != "auto" and node.replicas > cls.max_replicas:
            rep.add(base + ("replicas",), f"{node.kind} runs at most {cls.max_replicas} replica(s)", f"set replicas: {cls.max_replicas}")
        if not spec_store and not cls.live:
            rep.add(base + ("kind",), f"{node.kind} works on a frame store but the graph has no 'store'",
                    "add store: {path: data_store/{name}.zarr}")
        for port in node.inputs:
            if port not in cls.inputs:
                real = ", ".join(cls.inputs) or "none (it is a source)"
                rep.add(base + ("inputs", port), f"{node.kind} has no input port '{port}'", f"its input ports: {real}", key=True)
                continue
            for j, edge in enumerate(node.edges(port)):
                epath = base + ("inputs", port) + ((j,) if isinstance(node.inputs[port], list) else ())
                ref = split_ref(edge.from_)
                if ref is None:
                    rep.add(epath, f"input '{port}' reads '{edge.from_}', not of the form node/port", "e.g. camera/rgbd")
                    continue
                src_id, src_port = ref
                src = by_id.get(src_id)
                if src is None:
                    rep.add(epath, f"input '{port}' reads from unknown node '{src_id}'",
                            _did_you_mean(src_id, ids) or f"node ids: {', '.join(ids)}")
                    continue
                src_cls = known.get(src.kind)
                if src_cls is not None and src_port not in src_cls.outputs:
                    rep.add(epath, f"node '{src_id}' ({src.kind}) has no output port '{src_port}'",
                            f"its output ports: {', '.join(src_cls.outputs) or 'none'}")
        for port in cls.inputs:
            if port not in node.inputs:
                rep.add(base + ("kind",), f"input port '{port}' of {node.kind} is not connected",
                        f"add inputs: {{{port}: <node>/<port>}}")
    _check_cycles(rep, nodes)


def _check_cycles(rep: _Reporter, nodes: list[tuple[int, NodeSpec]]) -> None:
    index = {n.id: i for i, n in nodes}
    deps = {n.id: {ref[0] for p in n.inputs for e in n.edges(p) if (ref := split_ref(e.from_)) and ref[0] in index}
            for _, n in nodes}
    state: dict[str, int] = {}
    reported: set[frozenset] = set()

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        for v in sorted(deps[u]):
            if state.get(v) == 1:
                cycle = stack[stack.index(v):] + [v] if v in stack else [u, v]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    rep.add(("nodes", index[u], "inputs"), "cycle: " + " -> ".join(reversed(cycle)),
                            "graphs must be acyclic; remove one of these inputs")
            elif state.get(v) is None:
                visit(v, stack + [v])
        state[u] = 2

    for _, n in nodes:
        if n.id not in state:
            visit(n.id, [n.id])


def load_graph(path: str | Path, overrides: list[str] | None = None) -> LoadedGraph:
    """Parse, override and check a graph file; raise GraphError listing every problem."""
    file = str(path)
    located = load_graph_file(path)  # size, bytes, YAML safety: GraphError with a position
    if not isinstance(located.data, dict):
        raise GraphError([Problem(file, 1, 1, "a graph file is a YAML mapping", "start with `version: 1` and `name:`")])
    data, set_problems, origin = apply_overrides(located.data, list(overrides or []))
    rep = _Reporter(file, located, origin)
    rep.problems.extend(set_problems)
    for dpath, line, col in located.duplicates:
        rep.problems.append(Problem(file, line, col, f"duplicate key '{dpath[-1]}'", "each key may appear once"))
    spec: GraphSpec | None = None
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        _report_validation(rep, exc, GraphSpec, (), data)
    raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
    nodes: list[tuple[int, NodeSpec]] = []
    for i, raw in enumerate(raw_nodes):
        try:
            nodes.append((i, NodeSpec.model_validate(raw)))
        except ValidationError:
            continue  # already reported through GraphSpec
    seen: set[str] = set()
    for i, raw in enumerate(raw_nodes):
        nid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(nid, str) and nid in seen:
            rep.add(("nodes", i, "id"), f"duplicate node id '{nid}'", "node ids must be unique")
        seen.add(nid)
    _check_nodes(rep, nodes, spec_store=bool(data.get("store")))
    for where, message, hint in (store_problems(spec, data) if spec is not None else []):
        rep.add(where, message, hint)
    if rep.problems:
        raise GraphError(sorted(rep.problems, key=lambda p: (p.file != file, p.line, p.col)))
    assert spec is not None
    return LoadedGraph(spec=spec, file=file, located=located)

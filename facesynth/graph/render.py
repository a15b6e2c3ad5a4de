"""Show a checked graph as a text table or a mermaid flowchart (`facesynth graph show`)."""
from __future__ import annotations

from facesynth.graph.spec import GraphSpec
from facesynth.nodes import registry


def as_table(spec: GraphSpec) -> str:
    rows = [("node", "kind", "replicas", "inputs", "outputs")]
    for n in spec.nodes:
        cls = registry.get(n.kind)
        ins = ", ".join(f"{p}<-{e.from_}[{e.policy or spec.defaults.policy}/{e.queue or spec.defaults.queue}]"
                        for p in n.inputs for e in n.edges(p)) or "-"
        outs = ", ".join(cls.outputs) if cls else "?"
        rows.append((n.id, n.kind, str(n.replicas), ins, outs or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    store = spec.store_path()
    head = f"graph {spec.name}" + (f"  store {store} (chunks of {spec.store.chunk_frames} frames)" if store else "")
    return "\n".join([head, *lines])


def as_mermaid(spec: GraphSpec) -> str:
    lines = ["flowchart LR"]
    for n in spec.nodes:
        rep = f" x{n.replicas}" if n.replicas != 1 else ""
        lines.append(f'    {n.id}["{n.id}<br/>{n.kind}{rep}"]')
    for n in spec.nodes:
        for p in n.inputs:
            for e in n.edges(p):
                src, sport = e.from_.split("/", 1)
                lines.append(f"    {src} -->|{sport}:{p}| {n.id}")
    return "\n".join(lines)

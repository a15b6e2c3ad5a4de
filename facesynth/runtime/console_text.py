"""What a person reads while a graph runs and when it ends: run records turned into short lines.

Pure functions (no terminal, no rich): console.py puts their lines on a screen or into a pipe.
Every value is formatted here, never by repr(), and every text that came from a file, an argument
or a node (names, paths, error messages) goes through `terminal_safe` first, so a control
character in a graph file or a store cannot move the cursor or retitle a terminal.
Fields of an event may be missing (older run logs, other versions of a node): each line is built
from what is there.
"""
from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from facesynth.terminal_text import terminal_safe as _terminal_safe

#: the held-out numbers a person cares about, in the order shown: key, label, unit, format
EPOCH_METRICS = (("depth_mae_mm", "depth", " mm", "{:.2f}"), ("face_ssim", "face SSIM", "", "{:.3f}"),
                 ("face_lpips", "LPIPS", "", "{:.3f}"))
SUMMARY_METRICS = (("depth_mae_mm", "depth MAE", " mm", "{:.2f}"), ("face_ssim", "face SSIM", "", "{:.3f}"),
                   ("face_lpips", "face LPIPS", "", "{:.3f}"),
                   ("depth_roughness_ratio", "depth roughness", "", "{:.2f}"),
                   ("face_psnr", "face PSNR", " dB", "{:.1f}"))


def terminal_safe(text: Any) -> str:
    """`text` on one line with its control characters escaped (facesynth/terminal_text.py)."""
    return _terminal_safe(text, newlines=False)


def number(v: Any, digits: int = 3) -> str:
    """A number for people: ints as they are, floats to `digits` significant digits, no exponent
    below a million; anything else as safe text."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0 or abs(v) >= 10 ** digits:
            return f"{v:.0f}" if abs(v) < 1e6 else f"{v:.3g}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits - 1 - int(math.log10(abs(v))), 0)}f}"
    return terminal_safe(v)


def value_text(v: Any) -> str:
    """A field of any JSON shape as short plain text: `a 1, b 2` for a mapping, `1, 2` for a list."""
    if isinstance(v, dict):
        return ", ".join(f"{terminal_safe(k)} {value_text(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(value_text(x) for x in v)
    if v is None:
        return "-"
    return number(v)


def duration(seconds: float | None) -> str:
    """`7.5 s`, `2m05s`, `1h02m`; `-` when unknown."""
    if seconds is None or not isinstance(seconds, (int, float)) or math.isnan(seconds) or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _metric(d: dict, key: str, fmt: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v):
        return fmt.format(v)
    return None


def epoch_line(rec: dict) -> str:
    """`epoch 5/17  depth 2.35 mm  face SSIM 0.870  LPIPS 0.057   mean image 5.33 / 0.724 / 0.173   6.5 s`."""
    head = f"epoch {value_text(rec.get('epoch', '?'))}"
    if rec.get("epochs") is not None:
        head += f"/{value_text(rec['epochs'])}"
    if rec.get("step") is not None and rec.get("steps") is not None:
        head += f"  step {value_text(rec['step'])}/{value_text(rec['steps'])}"
    parts = [head]
    ev, base = rec.get("eval") or {}, rec.get("baseline") or {}
    for key, label, unit, fmt in EPOCH_METRICS:
        text = _metric(ev, key, fmt)
        if text is not None:
            parts.append(f"{label} {text}{unit}")
    base_vals = [_metric(base, key, fmt) for key, _, _, fmt in EPOCH_METRICS if _metric(ev, key, fmt) is not None]
    if base_vals and all(b is not None for b in base_vals):
        parts.append(" mean image " + " / ".join(base_vals))
    if not ev:
        parts.append("(no eval frames)")
    if isinstance(rec.get("epoch_s"), (int, float)):
        parts.append(" " + duration(rec["epoch_s"]))
    return "  ".join(parts)


def train_start_line(rec: dict) -> str:
    what = (f"training on {value_text(rec.get('train_frames', '?'))} frames "
            f"({value_text(rec.get('eval_frames', '?'))} held out), {value_text(rec.get('epochs', '?'))} epochs")
    where = [x for x in (rec.get("device") and f"on {value_text(rec['device'])}",
                         rec.get("threads") and f"{value_text(rec['threads'])} threads") if x]
    if where:
        what += ", " + " ".join(where)
    if rec.get("resumed"):
        what += f"; continuing after epoch {value_text(rec.get('epoch', '?'))}"
    aug = rec.get("small_set_augment")
    if isinstance(aug, dict) and aug:
        what += (f"; a small set: augmented (zoom +-{value_text(aug.get('augment_scale'))}, "
                 f"rotation +-{value_text(aug.get('augment_rotate_deg'))} deg, shift +-{value_text(aug.get('augment_px'))} px"
                 + (f", the first {round(100 * aug['augment_until'])} % of the steps" if aug.get("augment_until", 1) < 1 else "")
                 + ")")
    return what


def live_stats_line(rec: dict) -> str:
    """`viewer  89.6 fps  latency 11.2 / 18.0 ms (p50 / p99)  generator 4.9 ms  drops 0  1 client`."""
    parts = [f"{terminal_safe(rec.get('node', 'live'))}", f"{number(rec.get('fps', 0.0), 3)} fps"]
    if rec.get("source"):
        parts.insert(1, f"from {terminal_safe(rec['source'])}")
    lat = rec.get("latency_ms") or {}
    if isinstance(lat, dict) and lat.get("p50") is not None:
        parts.append(f"latency {number(lat['p50'])} / {number(lat.get('p99'))} ms (p50 / p99)")
    if rec.get("generator_ms") is not None:
        parts.append(f"generator {number(rec['generator_ms'])} ms")
    parts.append(f"frames {value_text(rec.get('frames', 0))}")
    parts.append(f"drops {value_text(rec.get('drops', 0))}")
    n = rec.get("clients")
    if isinstance(n, int):
        parts.append(f"{n} client" + ("" if n == 1 else "s"))
    return "  ".join(parts)


_NOT_FIELDS = {"type", "t", "name", "node", "replica", "tally", "traceback"}


def event_line(rec: dict) -> str | None:
    """One line for an event a person should see, or None for the ones only the run log keeps."""
    name, node = rec.get("name"), terminal_safe(rec.get("node", ""))
    if name == "train.epoch":
        return epoch_line(rec)
    if name == "train.start":
        return train_start_line(rec)
    if name == "live.stats":
        return live_stats_line(rec)
    if name == "live.listening":
        where = rec.get("url") or f"{value_text(rec.get('host'))}:{value_text(rec.get('port'))}"
        return f"{node} listening: {terminal_safe(rec.get('protocol', ''))} {terminal_safe(where)}"
    if name == "capture.rejects":
        return f"{node}: " + value_text({k: v for k, v in rec.items() if k not in _NOT_FIELDS})
    if name in ("train.stopped", "train.model_restarted", "live.calibrated", "live.files"):
        return f"{node} {terminal_safe(name)}: " + value_text({k: v for k, v in rec.items() if k not in _NOT_FIELDS})
    if isinstance(rec.get("tally"), str):
        return warning_line(rec)
    return None


def warning_line(rec: dict) -> str:
    what = rec.get("error") or value_text({k: v for k, v in rec.items() if k not in _NOT_FIELDS | {"error"}})
    return (f"warning: {terminal_safe(rec.get('node', ''))} {terminal_safe(rec.get('name', ''))} "
            f"({terminal_safe(rec.get('tally'))}): {terminal_safe(what)}")


def error_line(rec: dict) -> str:
    how = " (fatal)" if rec.get("fatal") else f" (restart {value_text(rec.get('restart'))})"
    return (f"error in {terminal_safe(rec.get('node'))} on {terminal_safe(rec.get('chunk'))}: "
            f"{terminal_safe(rec.get('error'))}{how}")


def stage_text(node: str, s: dict) -> str:
    """`camera 12/35 6.0/s ~4.1 s left` for a stage {items, total, estimated, state, rate, remaining_s}."""
    total = s.get("total")
    text = f"{terminal_safe(node)} {value_text(s.get('items', 0))}"
    if total:
        text += f"/{'~' if s.get('estimated') else ''}{value_text(total)}"
    if s.get("state") in ("running", "finishing"):
        if s.get("rate"):
            text += f" {number(s['rate'], 2)}/s"
        if s.get("remaining_s"):
            text += f" ~{duration(s['remaining_s'])} left"
    elif s.get("state"):
        text += f" {terminal_safe(s['state'])}"
    return text


def training_text(t: dict) -> str:
    """`training step 300/1020 ~1m10s left` from {step, steps, remaining_s}."""
    text = f"training step {value_text(t.get('step'))}/{value_text(t.get('steps'))}"
    if t.get("remaining_s"):
        text += f" ~{duration(t['remaining_s'])} left"
    return text


def status_line(elapsed_s: float | None, stages: dict[str, dict], training: dict | None) -> str:
    """One plain progress line for a pipe: every stage, then training."""
    parts = [stage_text(n, s) for n, s in stages.items()]
    if training:
        parts.append(training_text(training))
    return f"[{duration(elapsed_s)}] " + " | ".join(parts)


# ---- the end of a run ------------------------------------------------------------------------
def warnings_text(stats_nodes: dict) -> tuple[int, str]:
    """(count, `capture.damaged jpeg 2, crc 1 (camera)`) from the final stats' per-node warnings."""
    total, parts = 0, []
    for node, s in (stats_nodes or {}).items():
        for name, kinds in (s.get("warnings") or {}).items():
            n = sum(v for v in kinds.values() if isinstance(v, int))
            total += n
            parts.append(f"{terminal_safe(name)} {value_text(kinds)} ({terminal_safe(node)})")
    return total, "; ".join(parts)


def metrics_table(ev: dict, base: dict) -> list[str]:
    """Rows `  depth MAE   1.90 mm   5.31 mm` of the export's held-out metrics beside the baseline."""
    rows = []
    for key, label, unit, fmt in SUMMARY_METRICS:
        mine = _metric(ev, key, fmt)
        if mine is None:
            continue
        theirs = _metric(base, key, fmt)
        rows.append(f"    {label:<16} {mine + unit:>10}   {(theirs + unit) if theirs else '-':>10}")
    if rows:
        rows.insert(0, f"    {'':<16} {'model':>10}   {'mean image':>10}")
    return rows


def command(*words: str) -> str:
    return " ".join(shlex.quote(terminal_safe(w)) for w in words)


def next_commands(graph_file: str | None, export_dir: str | None, store: str | None,
                  prog: str = "facesynth") -> list[dict]:
    """{command, purpose} a person runs next after a run that made `export_dir` from `store`;
    `prog` is how the person started facesynth (e.g. .venv/bin/facesynth)."""
    if not export_dir:
        return [{"command": command(prog, "store", "info", store), "purpose": "what the store holds"}] if store else []
    graphs = Path(graph_file).parent if graph_file else Path("graphs")
    demo, serve = graphs / "live_demo.yaml", graphs / "live_inference.yaml"
    default_export = "data_store/capture_to_model.zarr.model/export"
    sets_demo: list[str] = []
    if Path(export_dir) != Path(default_export):
        sets_demo = [f"nodes.track.params.store={store}", f"nodes.condition.params.store={store}",
                     f"nodes.condition.params.model={export_dir}", f"nodes.generator.params.model={export_dir}"]
    # --local: a live graph in one process holds 90 Hz where Ray's process per node does not (docs/live_protocol.md)
    return [{"command": command(prog, "graph", "run", str(demo), "--local",
                                *[a for s in sets_demo for a in ("--set", s)]),
             "purpose": "watch it move in the browser viewer (http://127.0.0.1:8090/; `facesynth view` opens it)"},
            {"command": command(prog, "graph", "run", str(serve), "--local", "--set",
                                f"nodes.generator.params.model={export_dir}"),
             "purpose": "serve it live to VR clients (examples/vr_client.py receives the frames)"}]


def summary_lines(summary: dict, graph_file: str | None = None) -> list[str]:
    """The end of a run for a person: how it went, what was made and where, the export's
    held-out metrics beside the mean-image baseline, warnings counted, what to run next."""
    status = summary.get("status", "?")
    lines = [f"run {terminal_safe(status)} in {duration(summary.get('elapsed_s'))}"]
    made = []
    if summary.get("store"):
        made.append(f"    store      {terminal_safe(summary['store'])}")
    model = summary.get("model") or {}
    if model.get("dir"):
        shape = ", ".join(x for x in (model.get("size") and f"{value_text(model['size'])} px",
                                      model.get("ngf") and f"ngf {value_text(model['ngf'])}",
                                      model.get("steps") and f"{value_text(model['steps'])} steps") if x)
        made.append(f"    model      {terminal_safe(model['dir'])}" + (f"  ({shape})" if shape else ""))
        files = model.get("files")
        if files:
            made.append(f"               {', '.join(terminal_safe(f) for f in files)}")
        if model.get("error"):
            made.append(f"               (its metrics could not be read: {terminal_safe(model['error'])})")
    if summary.get("run_log"):
        made.append(f"    run log    {terminal_safe(summary['run_log'])}")
    if made:
        lines += ["made:"] + made
    table = metrics_table(model.get("eval") or {}, model.get("baseline") or {})
    if table:
        frames = (model.get("eval") or {}).get("frames")
        lines.append("held-out metrics of the export" + (f" ({value_text(frames)} eval frames):" if frames else ":"))
        lines += table
    count, detail = summary.get("warning_count", 0), summary.get("warning_text", "")
    lines.append(f"warnings: {count}" + (f" ({detail})" if detail else ""))
    if summary.get("retried"):
        lines.append(f"retried after an error: {value_text(summary['retried'])}")
    nexts = summary.get("next") or []
    if nexts:
        lines.append("next:")
        for step in nexts:
            lines += [f"    {terminal_safe(step.get('command', ''))}", f"        {terminal_safe(step.get('purpose', ''))}"]
    return lines

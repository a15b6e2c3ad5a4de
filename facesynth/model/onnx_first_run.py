"""The checks and first run of an ONNX model someone sent, in a process of its own (onnx_check.py
starts it).

`python -m facesynth.model.onnx_first_run MODEL SIZE BUDGET_BYTES` caps its own address space at
what it uses after importing onnx plus BUDGET_BYTES and runs onnx_check's static checks (parsing
and shape inference of the crafted bytes happen here, not in the parent). A graph that passes is
then given to ONNX Runtime, imported under a cap renewed the same way: a CPU session (ONNX Runtime
folds constants here: an allocation bomb can go off at this point already) and one zero drawing
(1, 1, SIZE, SIZE). It prints one JSON line: the output shapes, the milliseconds and its peak
RSS, a static check's refusal, or the runtime's error. Whatever the graph does, only this process
runs out of memory or time; its parent kills it after the time box. No torch is imported.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cap_memory(budget: int) -> None:
    """Address space capped at what this process holds now plus `budget` bytes. Only the soft
    limit: nothing a graph does runs Python, so only this file raises it again (after an import)."""
    limit = _status_kb("VmSize") * 1024 + budget
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main(argv: list[str]) -> int:
    path, size, budget = argv[0], int(argv[1]), int(argv[2])
    import numpy as np
    try:
        import onnx  # noqa: F401 - imported before the cap
    except ImportError as e:
        print(json.dumps({"missing": str(e)}))
        return 4

    from facesynth.errors import ModelFileError
    from facesynth.model.onnx_check import static_checks

    cap_memory(budget)
    try:
        static_checks(Path(path), size, budget)
    except ModelFileError as e:
        print(json.dumps({"refused": str(e)}))
        return 2
    except MemoryError:
        print(json.dumps({"error": "out of memory", "memory": True}))
        return 3
    try:  # only a graph that passed is worth the runtime's import
        import onnxruntime as ort
    except ImportError as e:
        print(json.dumps({"missing": str(e)}))
        return 4
    cap_memory(budget)
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        outs = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 1, size, size), np.float32)})
        ms = (time.perf_counter() - t0) * 1000.0
    except MemoryError:
        print(json.dumps({"error": "out of memory", "memory": True}))
        return 3
    except Exception as e:  # noqa: BLE001 - whatever the runtime says is reported, not raised
        text = str(e)
        memory = any(w in text.lower() for w in ("alloc", "memory", "bad_alloc"))
        print(json.dumps({"error": text[:500], "memory": memory}))
        return 3
    print(json.dumps({"shapes": [list(np.shape(o)) for o in outs], "ms": ms, "peak_rss_kb": _status_kb("VmHWM")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

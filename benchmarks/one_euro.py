"""One Euro filter on a recorded landmark track: jitter reduction and added latency vs unfiltered.

The track is a store's capture in time order (`--store`, default the main job's store). With a
synthetic capture the store also holds the true landmarks (raw/landmarks_true), so the filter is
judged against the truth: `detector` = mediapipe's real per-frame jitter on the rendered head,
`noise` = the true track + Gaussian noise (`--noise-px`). Without the truth only `detector` runs,
against the unfiltered track itself (no error/lag then, jitter only).

Per setting (min_cutoff Hz, beta): RMS error to the truth (px); lag = the time shift (ms) that
best maps the truth onto the output; jitter = RMS frame-to-frame change of the residual
(output - truth delayed by that lag): the noise left once motion and delay are taken out (px);
jitter_reduction = unfiltered jitter / filtered jitter (the baseline, measured in the same run).
Prints JSON.

  .venv/bin/python benchmarks/one_euro.py --store data_store/capture_to_model.zarr
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facesynth.live.conditioning import OneEuroFilter  # noqa: E402

SETTINGS = [(1.0, 0.0), (0.5, 0.05), (1.0, 0.05), (1.0, 0.2), (1.0, 1.0), (2.0, 0.05), (2.0, 0.5), (4.0, 0.1)]


def load_track(store_path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(t s, detected (N, 70, 2) crop px, true (N, 70, 2) crop px or None), frames in time order."""
    from facesynth.store.frame_store import FrameStore

    st = FrameStore.open(store_path, mode="r")
    ok = np.asarray(st.read("crop/ok"), bool)
    n = len(ok)
    t = np.asarray(st.read("raw/timestamp_us"), np.float64)[:n] / 1e6
    det = np.asarray(st.read("crop/landmarks"), np.float64)[:n]
    truth = None
    if st.has("raw/landmarks_true"):
        tr = np.asarray(st.read("crop/transform"), np.float64)[:n]
        true_src = np.asarray(st.read("raw/landmarks_true"), np.float64)[:n]
        truth = (true_src - tr[:, None, :2]) * tr[:, None, 2:3]  # colour px -> crop px, as face.crop does
    order = np.argsort(t[ok])
    return t[ok][order], det[ok][order], None if truth is None else truth[ok][order]


def run_filter(track: np.ndarray, t: np.ndarray, min_cutoff: float, beta: float) -> tuple[np.ndarray, float]:
    f = OneEuroFilter(min_cutoff, beta)
    out = np.empty_like(track)
    t0 = time.perf_counter()
    for i in range(len(track)):
        out[i] = f(track[i], float(t[i]))
    return out, (time.perf_counter() - t0) / len(track) * 1e6


def delayed(truth: np.ndarray, t: np.ndarray, tau_ms: float) -> np.ndarray:
    flat = truth.reshape(len(t), -1)
    return np.stack([np.interp(t - tau_ms / 1000.0, t, flat[:, j]) for j in range(flat.shape[1])], 1)


def lag_and_jitter(out: np.ndarray, truth: np.ndarray, t: np.ndarray, max_ms: float = 200.0) -> tuple[float, float]:
    """(delay tau minimising RMS(out(t) - truth(t - tau)), RMS frame-to-frame change of that residual)."""
    flat_out = out.reshape(len(t), -1)
    keep = t >= t[0] + max_ms / 1000.0
    best, best_err = 0.0, np.inf
    for tau in np.arange(0.0, max_ms + 0.5, 1.0):
        err = float(np.sqrt(((flat_out[keep] - delayed(truth, t, tau)[keep]) ** 2).mean()))
        if err < best_err:
            best, best_err = tau, err
    resid = flat_out[keep] - delayed(truth, t, best)[keep]
    return best, float(np.sqrt((np.diff(resid, axis=0) ** 2).mean()))


def measure(track: np.ndarray, truth: np.ndarray | None, t: np.ndarray) -> dict:
    def judge(x):
        if truth is None:  # no truth: jitter of the track itself (motion included), no lag
            return None, float(np.sqrt((np.diff(x, n=2, axis=0) ** 2).mean()))
        return lag_and_jitter(x, truth, t)

    def rms(x):
        return None if truth is None else round(float(np.sqrt(((x - truth) ** 2).mean())), 4)

    lag0, jit0 = judge(track)
    raw = {"rms_error_px": rms(track), "jitter_px": round(jit0, 4), "lag_ms": lag0}
    rows = []
    for mc, beta in SETTINGS:
        out, us = run_filter(track, t, mc, beta)
        lag, j = judge(out)
        rows.append({"min_cutoff_hz": mc, "beta": beta, "jitter_px": round(j, 4),
                     "jitter_reduction": round(jit0 / j, 3) if j > 0 else None, "rms_error_px": rms(out),
                     "lag_ms": lag, "added_lag_ms": None if lag is None else lag - lag0, "us_per_frame": round(us, 1)})
    return {"unfiltered": raw, "filtered": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="data_store/capture_to_model.zarr")
    ap.add_argument("--noise-px", type=float, default=1.0, help="Gaussian noise added to the true track (crop px)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t, det, truth = load_track(a.store)
    out = {"benchmark": "one_euro", "store": a.store, "frames": int(len(t)),
           "fps": round(float((len(t) - 1) / (t[-1] - t[0])), 2), "crop_px": "crop/landmarks units",
           "detector": measure(det, truth, t)}
    if truth is not None:
        noisy = truth + np.random.default_rng(a.seed).normal(0.0, a.noise_px, truth.shape)
        out["noise"] = {"noise_px": a.noise_px, **measure(noisy, truth, t)}
    print(json.dumps(out, indent=2))
    for name in ("detector", "noise"):
        if name in out:
            raw = out[name]["unfiltered"]
            print(f"{name}: unfiltered jitter {raw['jitter_px']} px, error {raw['rms_error_px']} px, lag {raw['lag_ms']} ms",
                  file=sys.stderr)
            for r in out[name]["filtered"]:
                print(f"  min_cutoff {r['min_cutoff_hz']:>4} beta {r['beta']:>5}: jitter x{r['jitter_reduction']} lower, "
                      f"error {r['rms_error_px']} px, added lag {r['added_lag_ms']} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

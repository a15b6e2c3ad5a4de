"""The second process of the live acceptance test: sends OSC and msgpack landmarks, then fuzz.

Phases: (1) warm-up: landmark set 0 over OSC (python-osc, as third-party senders do) and set 1
over msgpack/TCP every 50 ms until a line 'go' arrives on stdin (the test saw frames from both);
(2) fuzz: bad datagrams and bad messages, plus clients that connect and vanish; (3) sets 2..
alternately on both channels. Prints one JSON line with how many bad messages went to each input.
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time

import msgpack
import numpy as np
from pythonosc.udp_client import SimpleUDPClient

from facesynth.live import protocol as lp


def osc_fuzz(rng: np.random.Generator, good: np.ndarray) -> list[bytes]:
    ok = lp.encode_osc_landmarks(good)
    nan = good.copy()
    nan[5, 1] = np.nan
    inf = good.copy()
    inf[0, 0] = np.inf
    bad = [rng.bytes(int(n)) for n in rng.integers(1, 700, 12)]
    bad += [
        ok.replace(b"/landmarks", b"/landmarkz"),                        # wrong address
        lp._pad(b"/landmarks") + lp._pad(b"," + b"f" * 139) + good.reshape(-1)[:139].astype(">f4").tobytes(),
        lp._pad(b"/landmarks") + lp._pad(b"," + b"i" * 140) + good.reshape(-1).astype(">i4").tobytes(),
        ok[:-4],                                                           # truncated
        ok + b"\x00\x00\x00\x00",                                          # trailing bytes
        lp.encode_osc_landmarks(nan), lp.encode_osc_landmarks(inf),
        lp.encode_osc_landmarks(good * 1e6),                               # far outside the image
        b"#bundle\x00" + b"\x00" * 8 + struct.pack(">I", len(ok)) + ok,    # bundle
        ok + b"\x00" * 20000,                                              # oversized
        b"",                                                               # empty datagram
    ]
    return bad


def msgpack_fuzz(rng: np.random.Generator, good: np.ndarray) -> list[bytes]:
    nan = good.copy()
    nan[3, 0] = np.nan
    pk = lambda o: msgpack.packb(o, use_bin_type=True)  # noqa: E731
    flat = [float(x) for x in good.reshape(-1)]
    bad = [rng.bytes(int(n)) for n in rng.integers(1, 900, 12)]
    bad += [
        pk({"v": 1, "seq": 1, "landmarks": good.reshape(-1)[:139].astype("<f4").tobytes()}),  # 556 bytes
        pk({"v": 1, "seq": 1, "landmarks": flat[:138]}),                   # wrong length list
        pk({"v": 1, "seq": 1, "landmarks": flat + [1.0, 2.0]}),            # 142 values
        pk({"v": 1, "seq": 1, "landmarks": ["x"] * 140}),                  # wrong types
        pk({"v": 1, "seq": "one", "landmarks": flat}),                     # seq not an int
        pk({"v": 1, "seq": 1, "t": "now", "landmarks": flat}),             # t not a number
        pk({"v": 2, "seq": 1, "landmarks": flat}),                         # wrong version
        pk([1, 2, 3]),                                                     # not a map
        pk({"v": 1, "seq": 1, "landmarks": nan.reshape(-1).astype("<f4").tobytes()}),  # NaN
        pk({"v": 1, "seq": 1, "landmarks": [float("inf")] * 140}),         # inf
        pk({"v": 1, "seq": 1, "landmarks": b"\x00" * 10000}),              # oversized bin
        pk({"v": 1, "seq": 1, "landmarks": flat * 2}),                     # 280 values: array limit
        pk({1: 2}),                                                        # non-string key
        lp.encode_landmark_message(good, 1) + b"\x01",                     # trailing data
    ]
    return bad


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--osc", type=int, required=True)
    ap.add_argument("--tcp", type=int, required=True)
    ap.add_argument("--sets", required=True, help=".npy of (N, 70, 2) landmark sets")
    ap.add_argument("--interval", type=float, default=0.04)
    a = ap.parse_args()
    sets = np.load(a.sets)
    osc = SimpleUDPClient("127.0.0.1", a.osc)
    raw_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    go = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()

    tcp = None
    seq = 0
    while not go.is_set():  # phase 1
        osc.send_message("/landmarks", [float(v) for v in sets[0].reshape(-1)])
        if tcp is None:
            try:
                tcp = socket.create_connection(("127.0.0.1", a.tcp), timeout=1.0)
            except OSError:
                tcp = None
        if tcp is not None:
            seq += 1
            tcp.sendall(lp.frame_bytes(lp.encode_landmark_message(sets[1], seq)))
        time.sleep(0.05)

    rng = np.random.default_rng(1)
    bad_osc, bad_tcp = osc_fuzz(rng, sets[0]), msgpack_fuzz(rng, sets[1])
    for d in bad_osc:  # phase 2
        raw_udp.sendto(d, ("127.0.0.1", a.osc))
        time.sleep(0.002)
    for d in bad_tcp:
        tcp.sendall(lp.frame_bytes(d))
    for _ in range(3):  # clients that come and go, one with an impossible length prefix
        socket.create_connection(("127.0.0.1", a.tcp)).close()
    with socket.create_connection(("127.0.0.1", a.tcp)) as evil:
        evil.sendall(struct.pack(">I", 1 << 30) + b"\x00" * 64)
        time.sleep(0.1)
    n_tcp = len(bad_tcp) + 1
    time.sleep(0.3)

    for i in range(2, len(sets)):  # phase 3
        pts = sets[i]
        if i % 2 == 0:
            osc.send_message("/landmarks", [float(v) for v in pts.reshape(-1)])
        else:
            seq += 1
            tcp.sendall(lp.frame_bytes(lp.encode_landmark_message(pts, seq, binary=bool(i % 4 == 1))))
        time.sleep(a.interval)
    tcp.close()
    print(json.dumps({"bad_osc": len(bad_osc), "bad_tcp": n_tcp}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

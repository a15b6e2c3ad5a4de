"""`facesynth graph run` on embedded Ray, as a user runs it: every socket of the run listens on
loopback only, and SIGTERM stops the run like Ctrl-C (exit 1, the hint, a clean resume)."""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from spine_helpers import expected_blur2

from facesynth.store.frame_store import FrameStore
from facesynth.store.progress import Progress

pytestmark = pytest.mark.ray
psutil = pytest.importorskip("psutil")


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback


def listening_sockets(root: psutil.Process) -> list[tuple[str, str, str, int]]:
    """(process name, kind, address, port) of every TCP socket listening and every UDP socket
    bound, in `root` and all its descendants (the GCS, raylet, agents, workers)."""
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            name, conns = proc.name(), proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for c in conns:
            if c.type == socket.SOCK_STREAM and c.status == psutil.CONN_LISTEN:
                found.append((name, "tcp", c.laddr.ip, c.laddr.port))
            elif c.type == socket.SOCK_DGRAM and c.laddr:
                found.append((name, "udp", c.laddr.ip, c.laddr.port))
    return found


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "facesynth.cli", "graph", "run", *args, "--quiet"]


def test_embedded_run_listens_on_loopback_only_and_sigterm_stops_it_for_a_clean_resume(tmp_path, make_graph):
    (tmp_path / "ref").mkdir()
    (tmp_path / "run").mkdir()
    frames = 8 * 16
    reference = make_graph(tmp_path / "ref", frames=frames)
    assert subprocess.run(cli(reference, "--local"), capture_output=True).returncode == 0
    graph = make_graph(tmp_path / "run", frames=frames, blur="delay_ms: 300")
    proc = subprocess.Popen(cli(graph), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = Progress(tmp_path / "run" / "store.zarr")
        deadline = time.time() + 240  # Ray's start-up on a busy 2-core machine
        while time.time() < deadline and proc.poll() is None and len(progress.load("blur2")) < 2:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        sockets = listening_sockets(psutil.Process(proc.pid))
        names = {name for name, *_ in sockets}
        assert {"gcs_server", "raylet"} <= names and len(sockets) >= 5, sockets  # the run's servers were seen
        exposed = [s for s in sockets if not is_loopback(s[2])]
        assert exposed == [], f"listening beyond loopback: {exposed}"
        ray_procs = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "run `facesynth graph run` again to continue" in err
    for dump in ("Traceback", "SIGTERM received", "PC: @", "Stack trace", "Fatal Python error"):
        assert dump not in err, err
    log = max((tmp_path / "run" / "store.zarr.runs").glob("*.jsonl"), key=os.path.getmtime)
    assert json.loads(log.read_text().splitlines()[-1])["status"] == "interrupted"
    psutil.wait_procs(ray_procs, timeout=30)
    assert [p.pid for p in ray_procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    partial = len(progress.load("blur2"))
    assert 2 <= partial < 16

    rerun = subprocess.run(cli(graph), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok"
    a = FrameStore.open(tmp_path / "ref" / "store.zarr", "r")
    b = FrameStore.open(tmp_path / "run" / "store.zarr", "r")
    assert a.names() == b.names()
    for name in a.names():
        np.testing.assert_array_equal(a.read(name), b.read(name))
    np.testing.assert_array_equal(b.read("blur2/frames"), expected_blur2(frames))
    keys = [json.loads(x)["key"] for x in (tmp_path / "run" / "store.zarr" / "_progress" / "blur2.jsonl")
            .read_text().splitlines()]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 16  # each chunk recorded once over both runs

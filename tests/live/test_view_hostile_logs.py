"""`facesynth view` reads URLs from run logs, which travel with stores (issue 23): it opens only a
facesynth viewer on this machine, shows anything else escaped and refuses it, never hangs on a
dead port and never prints a traceback, whatever a log line holds. The real CLI runs in a child
(`view --print`: exit 0 with the URL, or exit 2 naming each refused URL). The viewer itself
refuses a handshake with two Origin (or Host) headers with 403, not a 500 and a traceback."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from facesynth.live.viewer_server import ViewerServer

sys.path.insert(0, str(Path(__file__).parents[1] / "spine"))
from cli_child import assert_refused, run_cli  # noqa: E402


def write_logs(runs: Path, urls: list[str], extra_lines: tuple[str, ...] = ()) -> Path:
    """One running run log per URL (a live.listening event, no run_end)."""
    runs.mkdir(exist_ok=True)
    for i, url in enumerate(urls):
        event = {"type": "event", "name": "live.listening", "protocol": "viewer/http+ws", "url": url}
        (runs / f"run{i:02d}.jsonl").write_text("\n".join([*extra_lines, json.dumps(event)]) + "\n")
    return runs


@contextlib.contextmanager
def answering_server(status: dict | None = None, server_header: str = "nginx"):
    """A local HTTP server answering 200 to any GET (a phishing page, or a fake viewer status)."""
    body = json.dumps(status if status is not None else {"ok": True}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Server", server_header)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def version_string(self):
            return server_header

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def real_viewer():
    """facesynth's ViewerServer on a free port, in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = ViewerServer("127.0.0.1", 0)
    try:
        _, port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield server, port
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_a_running_facesynth_viewer_is_found(tmp_path):
    with real_viewer() as (server, port):
        runs = write_logs(tmp_path / "runs", [server.url])
        rc, out, seconds, rss = run_cli(["view", "--print", str(runs)])
    assert rc == 0 and out.splitlines()[0] == f"http://127.0.0.1:{port}/", out


UNTRUSTED = {  # URL in a run log (a local server answering 200 to everything stands behind {port}) -> why refused
    "http://127.0.0.1:{port}/phish?x=": "not the viewer's root",
    "http://127.0.0.1:{port}/#frag": "not the viewer's root",
    "http://user@127.0.0.1:{port}/": "it has a user name",
    "https://127.0.0.1:{port}/": "not an http:// URL",
    "http://example.com:80/": "not a loopback address",
    "http://169.254.169.254:80/": "not a loopback address",
    "http://192.168.1.1:80/": "not a loopback address",
    "http://127.0.0.1.example.com:{port}/": "not a loopback address",
    "-xhttp://127.0.0.1:{port}/": "not an http:// URL",
    "http://127.0.0.1:{port}/\r\nX-Evil: 1": "not a plain URL",
    "http://127.0.0.1:{port}/\x1b]0;pwned\x07": "not a plain URL",
    "http://127.0.0.1:99999/": "not a URL",
    "http://127.0.0.1:{port}/": "what answers there is not a facesynth viewer",
}


def test_untrusted_urls_are_shown_escaped_and_refused(tmp_path):
    """Every URL of the table in its own running log: each is listed, escaped, with its reason;
    nothing is opened, exit 2."""
    with answering_server() as port:
        urls = {t.format(port=port): why for t, why in UNTRUSTED.items()}
        runs = write_logs(tmp_path / "runs", list(urls))
        out = assert_refused(run_cli(["view", "--print", str(runs)]), 2, "no running graph with a live.viewer")
    refused = [line for line in out.splitlines() if line.startswith("  refused ")]
    assert len(refused) == len(urls), out
    for url, why in urls.items():
        shown = url.replace("\r", "\\r").replace("\n", "\\n").replace("\x1b", "\\x1b").replace("\x07", "\\x07")
        assert any(line.startswith(f"  refused {shown} (from run") and why in line for line in refused), (url, out)


def test_look_alike_status_without_facesynth_server_header_is_refused(tmp_path):
    with real_viewer() as (server, _):
        status = server.status()
    with answering_server(status, server_header="nginx") as port:
        runs = write_logs(tmp_path / "runs", [f"http://127.0.0.1:{port}/"])
        assert_refused(run_cli(["view", "--print", str(runs)]), 2, "not a facesynth viewer")


def test_twenty_logs_naming_ports_that_never_answer_take_seconds_not_minutes(tmp_path):
    """Each port accepts connections (the kernel's backlog) and never replies: 1 s each, 2 s in
    all, then the rest are reported as not tried."""
    socks = []
    for _ in range(20):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        socks.append(s)
    try:
        runs = write_logs(tmp_path / "runs", [f"http://127.0.0.1:{s.getsockname()[1]}/" for s in socks])
        out = assert_refused(run_cli(["view", "--print", str(runs)]), 2, "does not answer (TimeoutError)",
                             "not tried, out of time")
    finally:
        for s in socks:
            s.close()
    assert out.count("refused ") == 20, out


def test_hostile_log_lines_and_files_never_raise(tmp_path):
    lines = ("[" * 100_000, '"just a string"', "[1, 2]", "{\"type\": \"event\", \"name\": 5}",
             '{"type": "event", "name": "live.listening", "protocol": ["viewer"], "url": {"a": 1}}',
             "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "x" * 300_000)
    runs = write_logs(tmp_path / "runs", ["http://127.0.0.1:1/"], extra_lines=lines)
    (runs / "zero.jsonl").symlink_to("/dev/zero")  # endless: refused as not a regular file
    (runs / "dangling.jsonl").symlink_to(tmp_path / "gone")
    import os
    os.mkfifo(runs / "fifo.jsonl")  # would block a reader forever
    assert_refused(run_cli(["view", "--print", str(runs)]), 2, "no running graph with a live.viewer",
                   "http://127.0.0.1:1/ (from run00.jsonl): does not answer")


async def test_two_origin_or_host_headers_get_403_not_500(caplog):
    server = ViewerServer("127.0.0.1", 0)
    _, port = await server.start()
    caplog.set_level(logging.INFO, logger="websockets")
    good = f"Origin: http://127.0.0.1:{port}\r\n"
    cases = {"Origin": good + "Origin: http://evil.example\r\n", "Host": f"Host: 127.0.0.1:{port}\r\n"}
    try:
        for name, extra in cases.items():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            await writer.drain()
            status_line = (await asyncio.wait_for(reader.readline(), 10)).decode()
            writer.close()
            assert status_line.startswith("HTTP/1.1 403 "), (name, status_line)
        assert server.status()["rejected"] == {"bad_origin": 1, "bad_host": 1}
    finally:
        await server.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text

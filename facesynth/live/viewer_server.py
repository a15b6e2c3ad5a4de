"""The browser viewer's server: the page and its scripts over HTTP, RGBD frames over a WebSocket.

One port (websockets' server answers plain HTTP GETs through `process_request`): `/` the page,
`/viewer.js`, `/vendor/...` (three.js, shipped in the package: nothing comes from the internet),
`/status.json` (counts), and `/ws` the frame stream. Every client gets only the newest frame:
while a send to a slow browser is in progress, newer frames replace the waiting one (counted),
so no browser ever delays the graph. The page sends nothing but optional tiny JSON pings; a
client that sends anything else (or too much, or too often) is dropped and counted, as are
handshakes from another web origin (a page on some website must not read the face stream) or
with a foreign Host header (DNS rebinding), clients over `max_clients`, requests that are not
HTTP, broken upgrade headers and handshakes that do not finish within 10 s.
"""
from __future__ import annotations

import asyncio
import json
import mimetypes
import struct
import time
from collections import Counter
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from facesynth.errors import MissingDependencyError, PortInUseError

WEB_DIR = Path(__file__).with_name("web")
MAX_CLIENT_MESSAGE = 1024       # the page's pings are ~20 bytes
MAX_CLIENT_MESSAGES_PER_S = 20  # more than this from a page is a misbehaving client
FRAME_MAGIC = b"FSV1"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def encode_viewer_frame(header: dict, rgb: bytes, depth: bytes) -> bytes:
    """b"FSV1" + u32 LE header length + JSON header + padding to 4 + rgb (S*S*3 u8) + depth (u16 LE).

    The header names `rgb_offset` and `depth_offset` (bytes from the start), so the page can view
    both arrays in place (the depth offset is even, as a Uint16Array needs).
    """
    head = dict(header)
    head["rgb_bytes"], head["depth_bytes"] = len(rgb), len(depth)
    for _ in range(2):  # the offsets are part of the header whose length they depend on
        text = json.dumps(head, separators=(",", ":")).encode()
        start = 8 + len(text)
        start += -start % 4
        head["rgb_offset"] = start
        head["depth_offset"] = start + len(rgb) + (len(rgb) % 2)
    text = json.dumps(head, separators=(",", ":")).encode()
    pad = head["rgb_offset"] - 8 - len(text)
    if pad < 0:
        raise AssertionError("viewer header grew while fixing its offsets")
    return b"".join([FRAME_MAGIC, struct.pack("<I", len(text)), text, b" " * pad, rgb,
                     b"\x00" * (len(rgb) % 2), depth])


def decode_viewer_frame(data: bytes) -> tuple[dict, bytes, bytes]:
    """The inverse, for tests and benchmark clients."""
    if data[:4] != FRAME_MAGIC:
        raise ValueError("not a viewer frame")
    (n,) = struct.unpack_from("<I", data, 4)
    head = json.loads(data[8:8 + n])
    r, d = head["rgb_offset"], head["depth_offset"]
    return head, data[r:r + head["rgb_bytes"]], data[d:d + head["depth_bytes"]]


class _Client:
    """One browser: a single waiting frame slot and a task sending it (the `latest` policy)."""

    def __init__(self, ws: ServerConnection):
        self.ws = ws
        self.pending: bytes | None = None
        self.ready = asyncio.Event()
        self.sent = 0
        self.replaced = 0
        self.last_send_done = 0.0

    def offer(self, frame: bytes) -> None:
        if self.pending is not None:
            self.replaced += 1
        self.pending = frame
        self.ready.set()

    async def pump(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            frame, self.pending = self.pending, None
            if frame is not None:
                try:
                    await self.ws.send(frame)
                except ConnectionClosed:
                    return  # the handler notices and cleans up
                self.sent += 1
                self.last_send_done = time.time()


def _counting_connection(rejected: Counter) -> type[ServerConnection]:
    """A ServerConnection that counts what websockets drops silently: requests that are not HTTP
    at all, and handshakes that never finish within open_timeout (slow-loris)."""

    class CountingConnection(ServerConnection):
        async def handshake(self, *args, **kwargs) -> None:
            try:
                await super().handshake(*args, **kwargs)
            except asyncio.CancelledError:
                rejected["handshake_timeout"] += 1
                raise
            if self.request is None:
                rejected["bad_http"] += 1

    return CountingConnection


class ViewerServer:
    """HTTP + WebSocket server of the viewer page; `broadcast(frame)` never waits for a client."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8090, max_clients: int = 8, web_dir: Path = WEB_DIR,
                 compress: bool = False):
        self.host, self.port, self.max_clients = host, port, max_clients
        # permessage-deflate costs the graph's event loop CPU for every frame and client (the live
        # benchmark's largest cost after the generator: 61 fps at 90 Hz with it, 82 without): only
        # for a slow link
        self.compression = "deflate" if compress else None
        self.files = self._index(web_dir)
        self.clients: set[_Client] = set()
        self.rejected: Counter[str] = Counter()  # clients dropped or refused, by reason
        self.connections = 0
        self.replaced = 0  # frames replaced by a newer one before a slow client got them
        self.status_extra: dict = {}
        self._server = None

    @staticmethod
    def _index(web_dir: Path) -> dict[str, Path]:
        """The only paths served: the files shipped in web/ (no path from a request touches the disk)."""
        files = {"/" + p.relative_to(web_dir).as_posix(): p for p in web_dir.rglob("*") if p.is_file()}
        if "/index.html" not in files:
            raise MissingDependencyError(f"viewer page missing: {web_dir / 'index.html'} (a broken install: "
                                         "reinstall facesynth)")
        files["/"] = files["/index.html"]
        return files

    async def start(self) -> tuple[str, int]:
        try:
            self._server = await serve(self._handler, self.host, self.port, process_request=self._http,
                                       process_response=self._check_response,
                                       create_connection=_counting_connection(self.rejected),
                                       max_size=MAX_CLIENT_MESSAGE, server_header="facesynth-viewer",
                                       compression=self.compression,
                                       open_timeout=10, ping_interval=20, ping_timeout=20)
        except OSError as exc:
            raise PortInUseError(f"the viewer cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                                 "stop the other program or graph, or set the viewer's params.port "
                                 "(0 = any free port, `facesynth view` finds it)") from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self.host, self.port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host  # IPv6 (::1)
        return f"http://{host}:{self.port}/"

    # ---- HTTP ------------------------------------------------------------------------------
    @staticmethod
    def _single(request: Request, name: str) -> str | None:
        """The header's value; "" when it is there twice or more (each copy could say something else,
        so none is believed), None when it is absent."""
        values = request.headers.get_all(name)
        return values[0] if len(values) == 1 else ("" if values else None)

    def _host_ok(self, request: Request) -> bool:
        host = self._single(request, "Host")
        if host == "":
            return False  # two Host headers: one for the check, another for whoever reads it next
        if self.host not in LOOPBACK:
            return True  # bound to the network on purpose: any name of this machine may be used
        return host in {f"{h}:{self.port}" for h in ("127.0.0.1", "localhost", "[::1]")}

    def _origin_ok(self, request: Request) -> bool:
        origin = self._single(request, "Origin")
        if origin is None:  # not a browser (a script, a test): no web page is involved
            return True
        return origin == f"http://{self._single(request, 'Host') or ''}"

    def _reply(self, status: int, reason: str, body: bytes, ctype: str) -> Response:
        h = Headers()
        h["Content-Type"] = ctype
        h["Content-Length"] = str(len(body))
        h["Cache-Control"] = "no-store"
        h["X-Content-Type-Options"] = "nosniff"
        h["Content-Security-Policy"] = ("default-src 'self'; connect-src 'self' ws: ; img-src 'self' data:; "
                                        "style-src 'self' 'unsafe-inline'")
        return Response(status, reason, h, body)

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if not self._host_ok(request):
            self.rejected["bad_host"] += 1
            return self._reply(403, "Forbidden", b"wrong Host header\n", "text/plain")
        if path == "/ws":
            if not self._origin_ok(request):
                self.rejected["bad_origin"] += 1
                return self._reply(403, "Forbidden", b"cross-origin WebSocket refused\n", "text/plain")
            if len(self.clients) >= self.max_clients:
                self.rejected["too_many_clients"] += 1
                return self._reply(503, "Service Unavailable", b"too many viewers\n", "text/plain")
            if (self._single(request, "Upgrade") or "").lower() != "websocket":
                return self._reply(426, "Upgrade Required", b"WebSocket only\n", "text/plain")
            return None  # go on with the WebSocket handshake
        if path == "/status.json":
            return self._reply(200, "OK", json.dumps(self.status()).encode(), "application/json")
        f = self.files.get(path)
        if f is None:
            return self._reply(404, "Not Found", b"not found\n", "text/plain")
        ctype = "text/javascript" if f.suffix == ".js" else (mimetypes.guess_type(f.name)[0] or "text/plain")
        return self._reply(200, "OK", f.read_bytes(), ctype + ("; charset=utf-8" if ctype.startswith("text") else ""))

    def _check_response(self, conn: ServerConnection, request: Request, response: Response) -> None:
        if request.path.split("?", 1)[0] == "/ws" and response.status_code == 400:
            self.rejected["bad_handshake"] += 1  # websockets refused the upgrade headers

    # ---- WebSocket -------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        client = _Client(ws)
        self.clients.add(client)
        self.connections += 1
        pump = asyncio.create_task(client.pump())
        window_start, in_window = time.monotonic(), 0
        try:
            async for msg in ws:
                now = time.monotonic()
                if now - window_start >= 1.0:
                    window_start, in_window = now, 0
                in_window += 1
                reason = self._bad_message(msg, in_window)
                if reason:
                    self.rejected[reason] += 1
                    await ws.close(1008, reason)
                    return
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1009:  # more than MAX_CLIENT_MESSAGE bytes
                self.rejected["oversized"] += 1
            elif exc.sent is not None and exc.sent.code == 1009:
                self.rejected["oversized"] += 1
        finally:
            pump.cancel()
            self.replaced += client.replaced
            self.clients.discard(client)

    @staticmethod
    def _bad_message(msg: str | bytes, in_window: int) -> str | None:
        if in_window > MAX_CLIENT_MESSAGES_PER_S:
            return "flooding"
        if isinstance(msg, bytes):
            return "binary_message"
        try:
            obj = json.loads(msg)
        except ValueError:
            return "bad_json"
        if not isinstance(obj, dict) or obj.get("type") != "ping":
            return "unknown_message"
        return None

    def broadcast(self, frame: bytes) -> int:
        """Offer a frame to every client (each sends it when its previous send is done)."""
        for c in list(self.clients):
            c.offer(frame)
        return len(self.clients)

    def status(self) -> dict:
        live = sum(c.replaced for c in self.clients)
        return {"url": self.url, "clients": len(self.clients), "connections": self.connections,
                "rejected": dict(self.rejected), "replaced_frames": self.replaced + live,
                "sent": sum(c.sent for c in self.clients), **self.status_extra}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                pass

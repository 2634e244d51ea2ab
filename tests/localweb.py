"""A local web server that is also this machine's proxy, for download tests without the internet.

:class:`LocalWeb` answers plain-http requests itself, addressed to it directly
(``web.url + "/name"``) or as a proxy (``http://any.host/path/name`` through
``$http_proxy``): a file registered under the URL's last path component is
served; otherwise ``zeros`` bytes of zeros (when set) or a 404. Every HTTPS
tunnel (``CONNECT``) is refused with a 502 at once, so torchvision's https
mirrors fail fast and it falls back to their ``http://`` form, which arrives
here: the app's real download path, byte for byte, whatever DNS says.

Faults, for every reply: ``truncate_at`` (announce the whole length, close after
that many bytes), ``stall_after`` (send that many bytes, then nothing until
:meth:`close`; ``stalled`` is set when it stalls), ``delay_s`` between chunks.
"""
from __future__ import annotations

import http.server
import threading
import time
import urllib.request


class LocalWeb:
    def __init__(self, files: dict[str, bytes] | None = None, *, zeros: int | None = None,
                 truncate_at: int | None = None, stall_after: int | None = None, delay_s: float = 0.0,
                 chunk: int = 64 * 1024):
        self.files = dict(files or {})
        self.zeros, self.truncate_at, self.stall_after = zeros, truncate_at, stall_after
        self.delay_s, self.chunk = delay_s, chunk
        self.requests: list[str] = []     # paths (full URLs when used as a proxy), CONNECT targets too
        self.stalled = threading.Event()  # a reply has stopped sending (stall_after reached)
        self._closing = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_CONNECT(self):
                outer.requests.append(f"CONNECT {self.path}")
                self.send_error(502, "no tunnels here (local test proxy)")

            def do_GET(self):
                outer.requests.append(self.path)
                name = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                body = outer.files.get(name)
                if body is None and outer.zeros is not None:
                    body = bytes(outer.zeros)
                if body is None:
                    self.send_error(404, f"{name} is not served here")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                end = len(body) if outer.truncate_at is None else min(len(body), outer.truncate_at)
                stall = end if outer.stall_after is None else min(end, outer.stall_after)
                sent = 0
                try:
                    while sent < stall:
                        piece = body[sent:min(stall, sent + outer.chunk)]
                        self.wfile.write(piece)
                        self.wfile.flush()
                        sent += len(piece)
                        if outer.delay_s:
                            time.sleep(outer.delay_s)
                    if stall < end:
                        outer.stalled.set()
                        outer._closing.wait()
                except (BrokenPipeError, ConnectionResetError):  # the client went away (stopped)
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def as_proxy(self, monkeypatch) -> "LocalWeb":
        """Make this server the proxy for every http and https URL (for the rest of the test)."""
        for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(variable, self.url)
        for variable in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(variable, raising=False)
        # urlopen's shared opener reads the proxy settings once, when first used: build it afresh now,
        # and again after the test, from the restored environment
        monkeypatch.setattr(urllib.request, "_opener", None)
        return self

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "LocalWeb":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

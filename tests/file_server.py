"""A local HTTP server for download tests: serves bytes the test makes, misbehaving on request."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Plan:
    """How the next responses behave; each one-shot setting applies to one response."""

    files: dict[str, bytes] = field(default_factory=dict)
    fail: list[int] = field(default_factory=list)  # statuses for the next requests, in order
    cut_after: int | None = None  # one-shot: send this many body bytes, then close the connection
    stall_after: int | None = None  # one-shot: send this many body bytes, then wait for `release`
    ignore_range: bool = False  # answer Range requests with 200 and the whole file
    no_length: bool = False  # send no Content-Length (the body ends when the connection closes)
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location of a 302
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    sent: int = 0  # body bytes sent, all responses together
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        plan: Plan = self.server.plan
        with self.server.lock:
            range_header = self.headers.get("Range")
            plan.requests.append((self.path, range_header))
            status = plan.fail.pop(0) if plan.fail else None
            cut, plan.cut_after = plan.cut_after, None
            stall, plan.stall_after = plan.stall_after, None
        if self.path in plan.redirects:
            self.send_response(302)
            self.send_header("Location", plan.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = plan.files.get(self.path)
        if status or data is None:
            self.send_error(status or 404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not plan.ignore_range:
            start = int(match[1])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if plan.no_length:
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if stall is not None:
                self._send(body[:stall])
                plan.stalled.set()
                plan.release.wait(30)
                body = body[stall:]
            self._send(body if cut is None else body[:cut])  # after a cut, the connection closes
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (or was killed)

    def _send(self, data: bytes) -> None:
        for i in range(0, len(data), 1 << 14):
            chunk = data[i : i + (1 << 14)]
            # Counted before the write: the client may read the last chunk and the test check the
            # count before this thread runs again.
            with self.server.lock:
                self.server.plan.sent += len(chunk)
            try:
                self.wfile.write(chunk)
            except OSError:
                with self.server.lock:
                    self.server.plan.sent -= len(chunk)
                raise


class FileServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.plan = Plan()
        self.httpd.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def plan(self) -> Plan:
        return self.httpd.plan

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.plan.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

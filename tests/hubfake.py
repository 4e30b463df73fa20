"""A Hugging Face Hub on 127.0.0.1 that answers the file-resolution protocol huggingface_hub downloads
through (HEAD and GET /OWNER/NAME/resolve/REVISION/FILE), for repositories a test makes.

Answers as the Hub does: X-Repo-Commit and an ETag on every file (sha256 with X-Linked-* for weights,
the git blob sha1 otherwise), and errors as a status with X-Error-Code (RepoNotFound, GatedRepo,
RevisionNotFound, EntryNotFound), which huggingface_hub turns into its exception classes. No Xet
headers, so downloads are plain HTTP. Every request is logged as (method, path, status).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]]  # commit sha (40 hex) -> file name -> bytes
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit
    token: str | None = None  # private (or gated): only this token sees it
    gated: bool = False


class HubError(Exception):
    def __init__(self, status: int, code: str, commit: str | None = None):
        super().__init__(code)
        self.status, self.code, self.commit = status, code, commit


class FakeHub:
    def __init__(self, repos: dict[str, Repo]):
        self.repos, self.log = repos, []
        hub = self

        class Handler(_Handler):
            fake = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def gets(self, name: str) -> int:
        """How many times a file's bytes were sent."""
        return sum(
            1 for method, path, status in self.log if method == "GET" and path.endswith("/" + name) and status == 200
        )

    def find(self, repo_id: str, revision: str, name: str, token: str | None) -> tuple[str, bytes]:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404 if token else 401, "RepoNotFound")
        if repo.token is not None and token != repo.token:
            if repo.gated:
                raise HubError(403 if token else 401, "GatedRepo")
            raise HubError(404 if token else 401, "RepoNotFound")
        commit = repo.refs.get(revision, revision)
        if commit not in repo.commits:
            raise HubError(404, "RevisionNotFound")
        if name not in repo.commits[commit]:
            raise HubError(404, "EntryNotFound", commit)
        return commit, repo.commits[commit][name]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.0"  # a connection per request: nothing is left open after stop()

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        path = urlsplit(self.path).path
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            if match is None:
                raise HubError(404, "EntryNotFound")
            repo_id, revision, name = (unquote(g) for g in match.groups())
            commit, data = self.fake.find(repo_id, revision, name, token)
        except HubError as e:
            headers = {"X-Error-Code": e.code, "X-Error-Message": e.code}
            if e.commit:
                headers["X-Repo-Commit"] = e.commit
            self._send(e.status, headers, b'{"error": "%s"}' % e.code.encode())
            self.fake.log.append((self.command, path, e.status))
            return
        weights = name.endswith(".safetensors")
        etag = (
            hashlib.sha256(data).hexdigest() if weights else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        )
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        if weights:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        self._send(200, headers, data)
        self.fake.log.append((self.command, path, 200))

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

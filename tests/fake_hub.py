"""A local stand-in for the Hugging Face hub's file endpoint, for huggingface_hub pointed at it with HF_ENDPOINT.

It answers `HEAD`/`GET {endpoint}/{repo_id}/resolve/{revision}/{filename}` the way the hub does:
- every answer carries `X-Repo-Commit` (the repo's commit, 40 hex digits);
- a small file: 200 with `ETag` (its git blob sha1) and `Content-Length`, the body on GET;
- a `.safetensors` file is an LFS file: 302 with `X-Linked-Etag` (its sha256), `X-Linked-Size` and `Location`
  (on a second origin, the "CDN", which huggingface_hub downloads from without following the redirect on HEAD);
- an unknown file: 404 with `X-Error-Code: EntryNotFound`; an unknown repo: 401 `RepoNotFound`;
- a gated repo without the right `Authorization: Bearer <token>`: 401 with `X-Error-Code: GatedRepo`.

It records each request, so a test can tell that a second run read no file body. It serves on 127.0.0.1 at a free
port and shuts itself down after `lifetime_s`, so a test that fails half way leaves no server behind.
"""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


def _commit(repo_id: str) -> str:
    return hashlib.sha1(f"commit of {repo_id}".encode()).hexdigest()


class FakeHub:
    def __init__(self, files: dict[tuple[str, str], bytes], gated: dict[str, str] | None = None,
                 lifetime_s: float = 600.0):
        """files: {(repo_id, filename): content}; gated: {repo_id: the token that opens it}."""
        self.files = dict(files)
        self.gated = dict(gated or {})
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        # Two origins, as on the hub: huggingface_hub follows redirects within the hub's origin on HEAD, and takes
        # an LFS file's metadata from the redirect to the CDN's.
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class()) for _ in ("hub", "cdn")]
        self._threads = []
        for server in self._servers:
            server.daemon_threads = True
            self._threads.append(threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                                  daemon=True))
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        """The endpoint (HF_ENDPOINT)."""
        return self._origin(0)

    def _origin(self, i: int) -> str:
        host, port = self._servers[i].server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        for server, thread in zip(self._servers, self._threads, strict=True):
            if thread.is_alive():
                server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def body_gets(self) -> list[str]:
        """The paths of the GETs that were answered with a file body."""
        with self._lock:
            return [path for method, path in self.requests if method == "GET+body"]

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    # ---- the hub's answers ----

    def answer(self, method: str, path: str, authorization: str | None) -> tuple[int, dict, bytes]:
        """(status, headers, body) for a request path."""
        if path.startswith("/cdn/"):
            sha = path[len("/cdn/"):]
            for content in self.files.values():
                if hashlib.sha256(content).hexdigest() == sha:
                    return 200, {"Content-Length": str(len(content)), "ETag": f'"{sha}"'}, content
            return 404, {}, b""
        if "/resolve/" not in path:
            return 404, {}, b""
        repo_id, rest = path.lstrip("/").split("/resolve/", 1)
        _revision, _, filename = rest.partition("/")
        if not any(repo == repo_id for repo, _ in self.files):
            return 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b""
        headers = {"X-Repo-Commit": _commit(repo_id)}
        token = self.gated.get(repo_id)
        if token is not None and authorization != f"Bearer {token}":
            return 401, {**headers, "X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model is restricted"}, b""
        content = self.files.get((repo_id, filename))
        if content is None:
            return 404, {**headers, "X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}, b""
        if filename.endswith(".safetensors"):
            sha = hashlib.sha256(content).hexdigest()
            return 302, {**headers, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(content)),
                         "ETag": f'"{hashlib.sha1(sha.encode()).hexdigest()}"', "Location": f"{self._origin(1)}/cdn/{sha}",
                         "Content-Length": "0"}, b""
        blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        return 200, {**headers, "ETag": f'"{blob}"', "Content-Length": str(len(content))}, content

    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, with_body: bool):
                path = unquote(self.path.split("?", 1)[0])
                status, headers, body = hub.answer(self.command, path, self.headers.get("Authorization"))
                hub._record("GET+body" if with_body and status == 200 else self.command, path)
                self.send_response(status)
                headers.setdefault("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802 - the name http.server calls
                self._serve(with_body=False)

            def do_GET(self):  # noqa: N802
                self._serve(with_body=True)

            def log_message(self, *args):  # keep the test output quiet
                pass

        return Handler

"""A small Hugging Face Hub look-alike for tests: the real `huggingface_hub` client talks to it over HTTP.

It implements what pushing and downloading a model use: whoami, repo creation, YAML validation,
preupload (every file "regular", so contents travel inline), NDJSON commits, and HEAD/GET of
`/{repo}/resolve/{revision}/{path}` with the headers the client checks. Repositories live in memory with
their full commit history, so `revision=` works with a branch name or a commit id.

Start it with `HubServer()` as a context manager; it listens on 127.0.0.1 on a free port. Run this file
(`python tests/hub_server.py`) to keep one serving and try README's publishing commands against it.
"""

import base64
import hashlib
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

USER = "tester"
GOOD_TOKEN = "hf_test_token_of_the_local_hub"


@dataclass
class Repo:
    private: bool = False
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (commit id, files), oldest first

    def files_at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if not self.commits:
            return None
        if revision == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c[0] == revision), None)


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-request (a test ending, a retry) is normal; anything else is printed."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class HubServer:
    """The server and its state. `fail_commits=True` makes it drop every commit, as a Hub that goes away would."""

    def __init__(self, fail_commits: bool = False, port: int = 0):
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.fail_commits = fail_commits
        self.stall_downloads = False  # True: a file's GET is answered by silence (for up to a minute), as a stalled CDN
        self.lock = threading.Lock()
        self.httpd = QuietHTTPServer(("127.0.0.1", port), self._handler_class())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        found = self.repos[repo_id].files_at(revision)
        return dict(found[1]) if found else {}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                server._route(self, "GET")

            def do_HEAD(self) -> None:
                server._route(self, "HEAD")

            def do_POST(self) -> None:
                server._route(self, "POST")

        return Handler

    # -- routing -------------------------------------------------------------------------------------

    def _route(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = unquote(urlparse(request.path).path)
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)) if method == "POST" else b""
        with self.lock:
            self.requests.append(f"{method} {path}")
        routes = [
            ("GET", r"/api/whoami-v2", self._whoami),
            ("POST", r"/api/repos/create", self._create_repo),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)", self._preupload),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)", self._commit),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)(/revision/(?P<rev>[^/]+))?", self._model_info),
            ("GET|HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self._resolve),
        ]
        for methods, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if method in methods.split("|") and match:
                if not path.endswith("/resolve") and not self._authorized(request, path):
                    return self._send(request, 401, {"error": "Invalid credentials in Authorization header"})
                return handler(request, method, body, **{k: v for k, v in match.groupdict().items() if v})
        self._send(request, 404, {"error": f"no route for {method} {path}"}, head=method == "HEAD")

    def _authorized(self, request: BaseHTTPRequestHandler, path: str) -> bool:
        auth = request.headers.get("Authorization", "")
        if auth:
            return auth == f"Bearer {GOOD_TOKEN}"
        return "/resolve/" in path or path.startswith("/api/models/")  # anonymous reads of public repos

    def _send(self, request, status: int, payload: dict | bytes | None = None, headers: dict | None = None,
              head: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload or {}).encode()
        request.send_response(status)
        content_type = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        if not head:
            request.wfile.write(body)

    # -- endpoints -----------------------------------------------------------------------------------

    def _whoami(self, request, method, body) -> None:
        if not request.headers.get("Authorization"):
            return self._send(request, 401, {"error": "You must be logged in"})
        self._send(request, 200, {"type": "user", "name": USER, "fullname": "Test User",
                                  "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    def _create_repo(self, request, method, body) -> None:
        spec = json.loads(body or b"{}")
        repo_id = f"{spec.get('organization') or USER}/{spec['name']}"
        with self.lock:
            exists = repo_id in self.repos
            private = spec.get("visibility") == "private" or bool(spec.get("private"))  # newer clients send visibility
            self.repos.setdefault(repo_id, Repo(private=private))
        if exists:
            return self._send(request, 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"})
        self._send(request, 200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, request, method, body) -> None:
        self._send(request, 200, {"errors": [], "warnings": []})

    def _preupload(self, request, method, body, repo: str, rev: str) -> None:
        if repo not in self.repos:
            return self._repo_not_found(request, repo)
        files = json.loads(body)["files"]
        self._send(request, 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                            for f in files], "commitOid": None})

    def _commit(self, request, method, body, repo: str, rev: str) -> None:
        if repo not in self.repos:
            return self._repo_not_found(request, repo)
        if self.fail_commits:
            request.close_connection = True  # the Hub went away mid-push: no answer at all
            request.connection.shutdown(2)
            return
        with self.lock:
            found = self.repos[repo].files_at(rev)
            files = dict(found[1]) if found else {}
            summary = ""
            for line in body.decode().splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
            commit_id = hashlib.sha1(f"{repo}{len(self.repos[repo].commits)}{summary}".encode()).hexdigest()
            self.repos[repo].commits.append((commit_id, files))
        self._send(request, 200, {"commitUrl": f"{self.url}/{repo}/commit/{commit_id}", "commitOid": commit_id,
                                  "commitMessage": summary, "pullRequestUrl": None})

    def _model_info(self, request, method, body, repo: str, rev: str = "main") -> None:
        found = self.repos.get(repo) and self.repos[repo].files_at(rev)
        if not found:
            return self._repo_not_found(request, repo)
        commit_id, files = found
        self._send(request, 200, {"id": repo, "modelId": repo, "sha": commit_id, "private": self.repos[repo].private,
                                  "siblings": [{"rfilename": name} for name in sorted(files)]})

    def _resolve(self, request, method, body, repo: str, rev: str, file: str) -> None:
        found = self.repos.get(repo) and self.repos[repo].files_at(rev)
        if not found:
            return self._repo_not_found(request, repo, head=method == "HEAD")
        commit_id, files = found
        if file not in files:
            return self._send(request, 404, {"error": f"{file} does not exist"}, head=method == "HEAD",
                              headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit_id})
        content = files[file]
        headers = {"X-Repo-Commit": commit_id, "ETag": f'"{hashlib.sha1(content).hexdigest()}"'}
        deadline = time.monotonic() + 60
        while method == "GET" and self.stall_downloads and time.monotonic() < deadline:
            time.sleep(0.1)
        self._send(request, 200, content, headers=headers, head=method == "HEAD")

    def _repo_not_found(self, request, repo: str, head: bool = False) -> None:
        self._send(request, 404, {"error": f"Repository {repo} not found"}, head=head,
                   headers={"X-Error-Code": "RepoNotFound"})


def main() -> None:
    """Serve until Ctrl-C, to try README's publishing commands without the real Hub."""
    import argparse

    parser = argparse.ArgumentParser(description="a local Hugging Face Hub look-alike on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="(default: a free port)")
    port = parser.parse_args().port
    with HubServer(port=port) as hub:
        print("local Hub running; in another shell:\n"
              f"  export HF_ENDPOINT={hub.url} HF_TOKEN={GOOD_TOKEN} HF_HUB_DISABLE_XET=1 HF_HOME=$(mktemp -d)",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""A real HTTP server speaking the OpenAI chat-completions protocol, scripted per test.

It binds 127.0.0.1 on a free port (never any other address) and answers `POST /v1/chat/completions`
from a queue of scripted responses, recording every request it receives (body and Authorization
header) so tests can count attempts and check what was sent. When the queue runs dry it answers 599,
which is a 5xx, so an unexpected extra call shows up as a failure in the test instead of a hang.
`GET /v1/models` lists `models` when a test sets them (404 otherwise), recording the paths it gets.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"


@dataclass(frozen=True)
class Scripted:
    """One scripted HTTP response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # stall this long before answering (to trip the client's timeout)


# Stands for the model the request named, as a real server answers (litellm prices by this name).
REQUEST_MODEL = "__request_model__"


def completion(
    content: str, *, tokens_in: int = 120, tokens_out: int = 80, model: str = REQUEST_MODEL
) -> Scripted:
    """A well-formed chat completion whose message content is `content`."""
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        },
    }
    return Scripted(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> Scripted:
    """An OpenAI-style error body with HTTP status `status`."""
    body = {"error": {"message": message, "type": "test_error", "code": None, "param": None}}
    return Scripted(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def raw(body: bytes, *, status: int = 200, content_type: str = "application/json") -> Scripted:
    """Any body at all (truncated JSON, HTML, ...)."""
    return Scripted(status=status, body=body, headers={"Content-Type": content_type})


def stall(seconds: float) -> Scripted:
    """A reply that only comes after `seconds` (longer than the client's timeout)."""
    return Scripted(
        status=200,
        body=completion("too late").body,
        delay_s=seconds,
        headers={"Content-Type": "application/json"},
    )


class ChatServer:
    def __init__(self) -> None:
        self._queue: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.models: list[str] | None = None  # what GET /v1/models lists (None: 404)
        self.gets: list[str] = []  # paths of the GET requests received
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def enqueue(self, *responses: Scripted) -> None:
        with self._lock:
            self._queue.extend(responses)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases stalled handlers at once
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, body: dict[str, Any], authorization: str | None) -> Scripted:
        with self._lock:
            self.requests.append(body)
            self.authorizations.append(authorization)
            if self._queue:
                return self._queue.popleft()
        return api_error(599, "test server: no scripted response left")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with server._lock:
                    server.gets.append(self.path)
                    models = server.models
                if self.path.rstrip("/") != MODELS_PATH or models is None:
                    self._send(api_error(404, f"no route {self.path}"))
                    return
                listing = {"object": "list", "data": [{"id": m, "object": "model"} for m in models]}
                self._send(raw(json.dumps(listing).encode()))

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                if self.path.rstrip("/") != CHAT_PATH:
                    self._send(api_error(404, f"no route {self.path}"))
                    return
                request = json.loads(payload)
                scripted = server._next(request, self.headers.get("Authorization"))
                if scripted.delay_s and server._stopping.wait(scripted.delay_s):
                    return
                body = scripted.body.replace(
                    REQUEST_MODEL.encode(), str(request.get("model")).encode()
                )
                self._send(replace(scripted, body=body))

            def _send(self, scripted: Scripted) -> None:
                try:
                    self.send_response(scripted.status)
                    for name, value in scripted.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(scripted.body)))
                    self.end_headers()
                    self.wfile.write(scripted.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output clean

        return Handler

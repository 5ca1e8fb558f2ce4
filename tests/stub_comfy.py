"""A stand-in ComfyUI HTTP server for the queue client's hostile cases.

Listens on 127.0.0.1 only, records every upload, prompt, cancel and download,
and answers ``/history`` and ``/queue`` as a test scripts them (for example
with output entries that try to leave ``--out``). No websocket: the client polls.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, urlparse

PROMPT_ID = "stub-prompt"
OBJECT_INFO = {
    "LoadImage": {"input": {"required": {"image": [["lake.png"], {"image_upload": True}]}}},
    "PreviewImage": {"input": {"required": {"images": ["IMAGE", {}]}}},
    "SpeedNode": {"input": {"required": {"speed": ["FLOAT", {"min": 0.05, "max": 8.0}]}}},
}


class StubComfy:
    """Scripted answers; ``history(stub)`` and ``queue(stub)`` may be replaced by a test."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, bytes]] = []
        self.prompts: list[dict] = []
        self.deletes: list[dict] = []
        self.interrupts: list[dict] = []
        self.views: list[dict] = []
        self.history: Callable[["StubComfy"], dict] = lambda stub: {}
        self.queue: Callable[["StubComfy"], dict] = lambda stub: {"queue_running": [], "queue_pending": []}
        self.interrupt_status = 200
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def succeed_with(self, outputs: dict) -> None:
        """From now on the prompt has ended successfully with these outputs."""
        entry = {"status": {"status_str": "success", "messages": []}, "outputs": outputs}
        self.history = lambda stub: {PROMPT_ID: entry}

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, body, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/object_info":
                    return self._reply(200, OBJECT_INFO)
                if url.path.startswith("/history/"):
                    return self._reply(200, stub.history(stub))
                if url.path == "/queue":
                    return self._reply(200, stub.queue(stub))
                if url.path == "/view":
                    stub.views.append({k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()})
                    return self._reply(200, b"picture bytes", "image/png")
                return self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                path, body = urlparse(self.path).path, self._body()
                if path == "/upload/image":
                    name, data = _multipart_file(self.headers.get("Content-Type", ""), body)
                    stub.uploads.append((name, data))
                    return self._reply(200, {"name": name, "subfolder": "", "type": "input"})
                if path == "/prompt":
                    stub.prompts.append(json.loads(body))
                    return self._reply(200, {"prompt_id": PROMPT_ID, "number": 0, "node_errors": {}})
                if path == "/queue":
                    stub.deletes.append(json.loads(body))
                    return self._reply(200, {})
                if path == "/interrupt":
                    stub.interrupts.append(json.loads(body or b"{}"))
                    return self._reply(stub.interrupt_status, {})
                return self._reply(404, {"error": "not found"})

        return Handler


def _multipart_file(content_type: str, body: bytes) -> tuple[Optional[str], bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "image":
            return part.get_filename(), part.get_payload(decode=True)
    return None, b""

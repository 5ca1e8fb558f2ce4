"""One ComfyUI server as the client sees it: its HTTP endpoints, and what its answers mean.

The endpoints and messages used (ComfyUI 0.3.75 ``server.py`` / ``execution.py``):
``GET /object_info``, ``POST /upload/image`` (multipart ``image``, answers
``{name, subfolder, type}``), ``POST /prompt`` (HTTP 400 with ``error`` and
``node_errors`` when validation fails), ``GET /queue``, ``POST /queue`` (``delete``),
``POST /interrupt``, websocket ``/ws?clientId=``, ``GET /history/{prompt_id}`` and ``GET /view``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional
from urllib.parse import urlparse

from .errors import PromptError


class Server:
    """The base URL of a ComfyUI server and a ``requests`` session."""

    def __init__(self, url: str, request_timeout: float = 60.0):
        import requests

        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.request_timeout = request_timeout

    def get(self, path: str, stream: bool = False, **params: Any):
        response = self.session.get(
            self.url + path, params=params or None, timeout=self.request_timeout, stream=stream
        )
        response.raise_for_status()
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        return self.get(path, **params).json()

    def post(self, path: str, **kwargs: Any):
        return self.session.post(self.url + path, timeout=self.request_timeout, **kwargs)

    def websocket_url(self, client_id: str) -> str:
        parsed = urlparse(self.url)
        scheme = "wss" if parsed.scheme == "https" else "ws"
        return f"{scheme}://{parsed.netloc}{parsed.path}/ws?clientId={client_id}"

    # --- prompts ---------------------------------------------------------------------------

    def submit(self, prompt: dict, client_id: str, extra_data: Optional[dict] = None) -> str:
        """Queue ``prompt``; its id, or :class:`PromptError` with ComfyUI's reasons for refusing it."""
        body: dict[str, Any] = {"prompt": prompt, "client_id": client_id}
        if extra_data:
            body["extra_data"] = extra_data
        response = self.post("/prompt", json=body)
        if response.status_code != 200:
            try:
                answer = response.json()
            except ValueError:
                answer = response.text
            raise PromptError("ComfyUI refused the prompt: " + describe_refusal(answer, prompt))
        answer = response.json()
        if answer.get("node_errors"):
            # ComfyUI accepts a prompt when at least one output node is valid and runs only
            # those (server.py post_prompt): a half-run workflow is not what was asked for.
            self.cancel(answer["prompt_id"])
            raise PromptError("ComfyUI refused part of the prompt: " + describe_refusal(answer, prompt))
        return answer["prompt_id"]

    def queued_ids(self) -> set[str]:
        """Ids of the prompts running or waiting on the server (``GET /queue``)."""
        queue = self.get_json("/queue")
        return {
            str(item[1])
            for key in ("queue_running", "queue_pending")
            for item in queue.get(key, [])
            if isinstance(item, (list, tuple)) and len(item) > 1
        }

    def history_entry(self, prompt_id: str) -> Optional[dict]:
        """The history of an ended prompt; None while it waits or runs."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def cancel(self, prompt_id: str, settle_s: float = 3.0) -> str:
        """Remove a prompt from the queue, or stop it if it is running (only that prompt).

        Returns what really happened, checked on the server afterwards: removed,
        interrupted, already finished, or still there (the requests may fail or the
        node may not stop at once).
        """
        import requests

        try:
            deleted = self.post("/queue", json={"delete": [prompt_id]})
            stopped = self.post("/interrupt", json={"prompt_id": prompt_id})
        except requests.RequestException as error:
            return f"could not reach the server to cancel prompt {prompt_id} ({error}); it may still run there"
        acknowledged = deleted.status_code == 200 and stopped.status_code == 200
        asked = "cancel sent and acknowledged" if acknowledged else (
            f"cancel sent but not acknowledged (HTTP {deleted.status_code} / {stopped.status_code})"
        )
        deadline = time.monotonic() + settle_s
        try:
            while True:
                entry = self.history_entry(prompt_id)
                if entry is None and prompt_id not in self.queued_ids():
                    entry = self.history_entry(prompt_id)  # it may have ended between the two reads
                    if entry is None:
                        return f"prompt {prompt_id} was removed from the server's queue before it ran ({asked})"
                if entry is not None:
                    status = entry.get("status", {}).get("status_str")
                    if status == "success":
                        return f"prompt {prompt_id} had already finished on the server ({asked} too late)"
                    return f"prompt {prompt_id} was interrupted on the server ({asked})"
                if time.monotonic() > deadline:
                    return f"{asked}, but prompt {prompt_id} is still queued or running on the server"
                time.sleep(0.2)
        except (requests.RequestException, ValueError) as error:
            return f"{asked} for prompt {prompt_id}, but could not check the outcome ({error})"

    # --- files -----------------------------------------------------------------------------

    def upload_picture(self, path: str, what: str) -> str:
        """Send a local picture to the server's input folder; the name a loader node gives it there."""
        with open(path, "rb") as handle:
            response = self.post(
                "/upload/image",
                files={"image": (os.path.basename(path), handle, "application/octet-stream")},
                data={"type": "input"},
            )
        if response.status_code != 200:
            raise PromptError(f"uploading {path!r} for {what} failed: HTTP {response.status_code} {response.text}")
        answer = response.json()
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def view(self, entry: dict):
        """The streamed response of one output file (``filename``, ``subfolder``, ``type``)."""
        return self.get(
            "/view", stream=True,
            filename=entry["filename"], subfolder=entry.get("subfolder", ""), type=entry.get("type", "output"),
        )


def describe_refusal(body: Any, prompt: Optional[dict] = None) -> str:
    """ComfyUI's reasons for refusing a prompt (``/prompt`` answered 400), one line per problem."""
    if not isinstance(body, dict):
        return str(body)
    lines = []
    error = body.get("error")
    if isinstance(error, dict):
        head = error.get("message", "invalid prompt")
        if error.get("details"):
            head += f": {error['details']}"
        lines.append(head)
    elif error:
        lines.append(str(error))
    for node_id, entry in (body.get("node_errors") or {}).items():
        class_type = entry.get("class_type") or (prompt or {}).get(node_id, {}).get("class_type", "?")
        for problem in entry.get("errors", []):
            text = problem.get("message", "error")
            if problem.get("details"):
                text += f": {problem['details']}"
            lines.append(f"node {node_id} ({class_type}): {text}")
    return "\n".join(lines) or json.dumps(body)


def describe_failure(history_entry: dict) -> str:
    """The error message of a prompt that ran and failed (from its history status)."""
    status = history_entry.get("status", {})
    for event, data in status.get("messages", []):
        if event == "execution_error":
            # exception_type is module-qualified; a custom pack's module name is its folder path
            kind = str(data.get("exception_type") or "error").rsplit(".", 1)[-1]
            return (
                f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                f"{kind}: {str(data.get('exception_message', '')).strip()}"
            )
        if event == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return f"the prompt ended with status {status.get('status_str')!r}"

"""A small client of ComfyUI's HTTP API: queue a workflow, follow it, fetch its outputs.

Backs ``python -m text2cinemagraph queue``. Plain functions over ``requests`` (and
``websocket-client`` for live progress when installed; otherwise it polls
``/history``). No ComfyUI import: it talks to a running server.

The endpoints and messages used (ComfyUI 0.3.75 ``server.py`` / ``execution.py``):
``GET /object_info``, ``POST /upload/image`` (multipart ``image``, answers
``{name, subfolder, type}``), ``POST /prompt`` (HTTP 400 with ``error`` and
``node_errors`` when validation fails), websocket ``/ws?clientId=`` (``executing``,
``progress``, ``execution_cached``, ``execution_success``, ``execution_error``,
``execution_interrupted``), ``GET /history/{prompt_id}`` and ``GET /view``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlparse

from ..kernels.errors import InputError
from .api_files import PromptError, download_outputs, node_id_order, plan_uploads, upload_pictures
from .workflow_format import is_ui_workflow, ui_to_api, unsupported_nodes

TERMINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


class QueueInterrupted(KeyboardInterrupt):
    """Ctrl-C while queueing or waiting; the message says what happened to the prompt on the server."""


@dataclass
class Override:
    node: str
    input: str
    value: Any
    raw: str


@dataclass
class QueueResult:
    prompt_id: str
    history: dict
    files: list[str] = field(default_factory=list)


# --- reading the workflow and the command line ---------------------------------------


def load_workflow(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise InputError("WORKFLOW", f"cannot read {path!r}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise InputError("WORKFLOW", f"{path!r} is not JSON: {error}") from error
    if not isinstance(data, dict) or not data:
        raise InputError("WORKFLOW", f"{path!r} holds no workflow")
    if not is_ui_workflow(data) and not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise InputError(
            "WORKFLOW",
            f"{path!r} is neither a UI workflow (with 'nodes' and 'links') nor an API prompt "
            "({id: {class_type, inputs}})",
        )
    return data


def parse_value(text: str) -> Any:
    """JSON when it parses (``8``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def parse_override(text: str) -> Override:
    """``NODE.INPUT=VALUE``; NODE is an id, a title or a class name (may contain dots)."""
    target, equals, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not equals or not dot or not node.strip() or not name.strip():
        raise InputError("--set", f"expected NODE.INPUT=VALUE, got {text!r}")
    return Override(node.strip(), name.strip(), parse_value(raw), raw)


def resolve_node(prompt: dict, key: str) -> str:
    """The id of the node named by ``key``: an id, else a unique title, else a unique class name."""
    if key in prompt:
        return key
    for describe, matches in (
        ("title", [i for i, n in prompt.items() if n.get("_meta", {}).get("title") == key]),
        ("class", [i for i, n in prompt.items() if n.get("class_type") == key]),
        ("title", [i for i, n in prompt.items() if n.get("_meta", {}).get("title", "").lower() == key.lower()]),
        ("class", [i for i, n in prompt.items() if n.get("class_type", "").lower() == key.lower()]),
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InputError("--set", f"{key!r} matches several nodes by {describe} ({', '.join(matches)}); use the id")
    known = ", ".join(f"{i} ({n.get('class_type')})" for i, n in sorted(prompt.items(), key=lambda kv: node_id_order(kv[0])))
    raise InputError("--set", f"no node {key!r} in the workflow; nodes: {known}")


def _declared_inputs(object_info: Optional[dict], class_type: str) -> Optional[dict]:
    if not object_info or class_type not in object_info:
        return None
    groups = object_info[class_type].get("input", {})
    return {**groups.get("required", {}), **groups.get("optional", {})}


def apply_overrides(prompt: dict, overrides: list[Override], object_info: Optional[dict] = None) -> dict:
    """Set each override's value in ``prompt`` (in place; also returned).

    With ``object_info`` the input name is checked against the node class, and a
    STRING or list (combo) input keeps the text as typed (``--set 5.filename_prefix=2024``
    stays a string).
    """
    for override in overrides:
        node_id = resolve_node(prompt, override.node)
        node = prompt[node_id]
        inputs = node.setdefault("inputs", {})
        declared = _declared_inputs(object_info, node["class_type"])
        where = f"node {node_id} ({node['class_type']})"
        if declared is not None and override.input not in declared:
            raise InputError("--set", f"{where} has no input {override.input!r}; inputs: {', '.join(declared)}")
        if declared is None and override.input not in inputs:
            raise InputError("--set", f"{where} has no input {override.input!r}; inputs: {', '.join(inputs)}")
        if isinstance(inputs.get(override.input), list):
            source = inputs[override.input]
            raise InputError(
                "--set", f"{where}.{override.input} is connected to node {source[0]}; --set would cut the link"
            )
        value = override.value
        if declared is not None and not isinstance(value, str):
            kind = declared[override.input][0]
            if kind == "STRING" or isinstance(kind, list):
                value = override.raw
        if not _finite(value):  # JSON has no NaN or Infinity: the prompt could not be sent
            raise InputError(
                "--set", f"{override.node}.{override.input}={override.raw} is not a finite number; "
                "give a number such as 0.5"
            )
        inputs[override.input] = value
    return prompt


# --- talking to the server -----------------------------------------------------------


class Server:
    """The base URL of a ComfyUI server and a ``requests`` session."""

    def __init__(self, url: str, request_timeout: float = 60.0):
        import requests

        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.request_timeout = request_timeout

    def get(self, path: str, **params: Any):
        response = self.session.get(self.url + path, params=params or None, timeout=self.request_timeout)
        response.raise_for_status()
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        return self.get(path, **params).json()

    def websocket_url(self, client_id: str) -> str:
        parsed = urlparse(self.url)
        scheme = "wss" if parsed.scheme == "https" else "ws"
        return f"{scheme}://{parsed.netloc}{parsed.path}/ws?clientId={client_id}"


def to_api_prompt(workflow: dict, object_info: dict) -> dict:
    """The API prompt of a workflow in either format."""
    if not is_ui_workflow(workflow):
        return json.loads(json.dumps(workflow))  # a copy
    problems = unsupported_nodes(workflow, object_info)
    if problems:
        listed = ", ".join(f"{node_id} ({kind})" for node_id, kind in problems)
        raise InputError(
            "WORKFLOW",
            f"the server cannot run these nodes: {listed}. Install the missing node packs, or export the workflow "
            "from the editor in API format (Workflow > Export (API)) and queue that file",
        )
    return ui_to_api(workflow, object_info)


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


def submit(server: Server, prompt: dict, client_id: str, extra_data: Optional[dict] = None) -> str:
    body: dict[str, Any] = {"prompt": prompt, "client_id": client_id}
    if extra_data:
        body["extra_data"] = extra_data
    response = server.session.post(server.url + "/prompt", json=body, timeout=server.request_timeout)
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
        cancel(server, answer["prompt_id"])
        raise PromptError("ComfyUI refused part of the prompt: " + describe_refusal(answer, prompt))
    return answer["prompt_id"]


def _queued_ids(server: Server) -> set[str]:
    """Ids of the prompts running or waiting on the server (``GET /queue``)."""
    queue = server.get_json("/queue")
    return {
        str(item[1])
        for key in ("queue_running", "queue_pending")
        for item in queue.get(key, [])
        if isinstance(item, (list, tuple)) and len(item) > 1
    }


def _history_entry(server: Server, prompt_id: str) -> Optional[dict]:
    return server.get_json(f"/history/{prompt_id}").get(prompt_id)


def cancel(server: Server, prompt_id: str, settle_s: float = 3.0) -> str:
    """Remove a prompt from the queue, or stop it if it is running (only that prompt).

    Returns what really happened, checked on the server afterwards: removed,
    interrupted, already finished, or still there (the requests may fail or the
    node may not stop at once).
    """
    import requests

    try:
        deleted = server.session.post(server.url + "/queue", json={"delete": [prompt_id]}, timeout=server.request_timeout)
        stopped = server.session.post(
            server.url + "/interrupt", json={"prompt_id": prompt_id}, timeout=server.request_timeout
        )
    except requests.RequestException as error:
        return f"could not reach the server to cancel prompt {prompt_id} ({error}); it may still run there"
    acknowledged = deleted.status_code == 200 and stopped.status_code == 200
    asked = "cancel sent and acknowledged" if acknowledged else (
        f"cancel sent but not acknowledged (HTTP {deleted.status_code} / {stopped.status_code})"
    )
    deadline = time.monotonic() + settle_s
    try:
        while True:
            entry = _history_entry(server, prompt_id)
            if entry is not None:
                status = entry.get("status", {}).get("status_str")
                if status == "success":
                    return f"prompt {prompt_id} had already finished on the server ({asked} too late)"
                return f"prompt {prompt_id} was interrupted on the server ({asked})"
            if prompt_id not in _queued_ids(server):
                return f"prompt {prompt_id} was removed from the server's queue before it ran ({asked})"
            if time.monotonic() > deadline:
                return f"{asked}, but prompt {prompt_id} is still queued or running on the server"
            time.sleep(0.2)
    except (requests.RequestException, ValueError) as error:
        return f"{asked} for prompt {prompt_id}, but could not check the outcome ({error})"


class _Progress:
    """tqdm bars: nodes done of the prompt, and the running node's own steps."""

    def __init__(self, prompt: dict, enabled: bool):
        self.prompt = prompt
        self.enabled = enabled
        self.nodes = None
        self.steps = None
        self.done: set[str] = set()
        self.current: Optional[str] = None

    def _tqdm(self, **kwargs):
        from tqdm import tqdm

        return tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)

    def cached(self, nodes: list[str]) -> None:
        self.done.update(nodes)
        self._nodes_bar()

    def _nodes_bar(self) -> None:
        if not self.enabled:
            return
        if self.nodes is None:
            self.nodes = self._tqdm(total=len(self.prompt), desc="nodes", unit="node", position=0)
        self.nodes.n = len(self.done & set(self.prompt))
        self.nodes.refresh()

    def executing(self, node: Optional[str]) -> None:
        if self.current is not None:
            self.done.add(self.current)
        self.current = node
        if self.steps is not None:
            self.steps.close()
            self.steps = None
        self._nodes_bar()

    def step(self, node: str, value: int, total: int) -> None:
        if not self.enabled:
            return
        if self.steps is None or self.steps.total != total:
            if self.steps is not None:
                self.steps.close()
            kind = self.prompt.get(node, {}).get("class_type", "")
            self.steps = self._tqdm(total=total, desc=f"  {node} {kind}", unit="step", position=1, leave=False)
        self.steps.n = value
        self.steps.refresh()

    def close(self) -> None:
        if self.steps is not None:
            self.steps.close()
        if self.nodes is not None:
            self.nodes.n = len(self.done & set(self.prompt))
            self.nodes.close()


def _connect_websocket(server: Server, client_id: str):
    """A websocket-client connection, or None without the package or a websocket endpoint."""
    try:
        import websocket
    except ImportError:
        return None
    try:
        connection = websocket.create_connection(server.websocket_url(client_id), timeout=server.request_timeout)
    except Exception:  # an old server or a proxy without websockets: fall back to polling
        return None
    connection.settimeout(1.0)  # short reads, so that the deadline and history checks run
    return connection


def wait_for(
    server: Server,
    prompt_id: str,
    prompt: dict,
    connection=None,
    timeout: Optional[float] = None,
    show_progress: bool = True,
    poll_interval: float = 0.5,
) -> dict:
    """Follow a queued prompt until it ends; return its history entry.

    With a websocket ``connection`` (opened *before* queueing, with the same
    client id) progress is shown live; the history is checked every few seconds
    anyway, so a missed message cannot hang the wait.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = _Progress(prompt, show_progress)
    next_check = time.monotonic() + (5.0 if connection is not None else 0.0)
    finished = False
    try:
        while True:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:g} s")
            if finished or now >= next_check:
                entry = _ended_entry(server, prompt_id)
                if entry is not None:
                    return entry
                next_check = now + (0.25 if finished else 5.0 if connection is not None else poll_interval)
            if connection is None or finished:
                time.sleep(poll_interval if connection is None else 0.1)
                continue
            try:
                event = _receive(connection)
            except Exception:  # connection lost: go on by polling the history
                connection = None
                continue
            data = event.get("data") if isinstance(event, dict) else None
            if not isinstance(data, dict) or data.get("prompt_id", prompt_id) != prompt_id:
                continue
            kind = event.get("type")
            if kind == "execution_cached":
                progress.cached(data.get("nodes", []))
            elif kind == "executing":
                progress.executing(data.get("node"))
                finished = finished or data.get("node") is None
            elif kind == "progress":
                progress.step(str(data.get("node")), int(data.get("value", 0)), int(data.get("max", 1)))
            elif kind in TERMINAL_EVENTS:
                progress.executing(None)
                finished = True
    finally:
        progress.close()


def _ended_entry(server: Server, prompt_id: str) -> Optional[dict]:
    """The history entry of an ended prompt; None while it waits or runs.

    ComfyUI moves a prompt from the queue to the history under one lock, so a
    prompt in neither (checked history, queue, history again) was deleted by
    another client or lost in a server restart: waiting would never end.
    """
    entry = _history_entry(server, prompt_id)
    if entry is not None or prompt_id in _queued_ids(server):
        return entry
    entry = _history_entry(server, prompt_id)
    if entry is None:
        raise PromptError(
            f"prompt {prompt_id} left the server's queue without running to the end and has no history: "
            "another client deleted it, or the server restarted"
        )
    return entry


def _receive(connection) -> Optional[dict]:
    import websocket

    try:
        message = connection.recv()
    except websocket.WebSocketTimeoutException:
        return None
    if isinstance(message, bytes):  # preview images
        return None
    try:
        return json.loads(message)
    except ValueError:
        return None


def queue_workflow(
    server_url: str,
    workflow_path: str,
    overrides: list[str] = (),
    out_dir: Optional[str] = "t2c_outputs",
    timeout: Optional[float] = None,
    show_progress: bool = True,
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
    upload_workflow_images: bool = False,
) -> QueueResult:
    """Queue a workflow file on a server, wait for it, download its outputs.

    Only pictures named by ``--set`` are uploaded (and those named inside the
    workflow with ``upload_workflow_images``); each is listed before it is sent.

    Raises :class:`InputError` for bad arguments, :class:`PromptError` with
    ComfyUI's message when the server refuses or fails the prompt,
    :class:`QueueInterrupted` on Ctrl-C (saying what happened on the server),
    ``TimeoutError`` and ``requests`` errors otherwise.
    """
    workflow = load_workflow(workflow_path)
    parsed = [parse_override(text) for text in overrides]
    server = Server(server_url)
    object_info = server.get_json("/object_info")
    prompt = to_api_prompt(workflow, object_info)
    apply_overrides(prompt, parsed, object_info)
    named = {(resolve_node(prompt, o.node), o.input) for o in parsed}
    base_dirs = (".", os.path.dirname(os.path.abspath(workflow_path)))
    uploads, skipped = plan_uploads(prompt, named, base_dirs, upload_workflow_images)
    for upload in skipped:
        log(
            f"not uploading {upload.path} (named in the workflow, node {upload.node_id}); pass "
            f"--set {upload.node_id}.{upload.input}=PATH or --upload-workflow-images to send it"
        )
    for upload in uploads:
        log(f"will upload {upload.path} for node {upload.node_id} ({upload.input})")
    try:
        upload_pictures(server, prompt, uploads)
    except KeyboardInterrupt:
        raise QueueInterrupted("interrupted while uploading pictures; nothing was queued") from None
    for upload in uploads:
        log(f"uploaded {upload.path}")
    extra = None
    if is_ui_workflow(workflow) and not parsed:
        extra = {"extra_pnginfo": {"workflow": workflow}}  # saved into PNG outputs, as the editor does
    client_id = uuid.uuid4().hex
    connection = _connect_websocket(server, client_id)
    try:
        try:
            prompt_id = submit(server, prompt, client_id, extra)
        except KeyboardInterrupt:
            raise QueueInterrupted("interrupted while queueing; the server may or may not have queued the prompt") from None
        log(f"queued prompt {prompt_id} on {server.url}")
        try:
            entry = wait_for(server, prompt_id, prompt, connection, timeout, show_progress)
        except KeyboardInterrupt:
            raise QueueInterrupted(_cancel_after_ctrl_c(server, prompt_id)) from None
        except TimeoutError as error:
            raise TimeoutError(f"{error}; {cancel(server, prompt_id)}") from error
    finally:
        if connection is not None:
            connection.close()
    if entry.get("status", {}).get("status_str") != "success":
        raise PromptError(describe_failure(entry))
    result = QueueResult(prompt_id, entry)
    if out_dir is not None:
        try:
            result.files = download_outputs(server, entry, out_dir)
        except KeyboardInterrupt:
            raise QueueInterrupted(
                f"interrupted while downloading; prompt {prompt_id} had finished on the server. Files already "
                "downloaded are complete; the one being fetched was discarded"
            ) from None
    return result


def _cancel_after_ctrl_c(server: Server, prompt_id: str) -> str:
    try:
        return cancel(server, prompt_id)
    except KeyboardInterrupt:
        return f"a second Ctrl-C stopped the cancel request: prompt {prompt_id} may still run on the server"

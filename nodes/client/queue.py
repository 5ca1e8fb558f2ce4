"""One workflow on one server: read it, set inputs, queue it, follow it, fetch its outputs.

Backs ``python -m text2cinemagraph queue``. Plain functions over ``requests`` (and
``websocket-client`` for live progress when installed; otherwise it polls
``/history``). No ComfyUI import: it talks to a running server. The websocket
messages followed: ``executing``, ``progress``, ``execution_cached``,
``execution_success``, ``execution_error``, ``execution_interrupted``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .errors import ArgumentError, PromptError, PromptLost, QueueInterrupted
from .files import download_outputs, plan_uploads, upload_pictures
from .server import Server, describe_failure
from .workflow_format import is_ui_workflow, node_id_order, ui_to_api, unsupported_nodes

TERMINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


@dataclass
class Override:
    node: str
    input: str
    value: Any
    raw: str
    argument: str = "--set"  # the command-line option that set it, named in its errors


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
        raise ArgumentError("WORKFLOW", f"cannot read {path!r}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise ArgumentError("WORKFLOW", f"{path!r} is not JSON: {error}") from error
    if not isinstance(data, dict) or not data:
        raise ArgumentError("WORKFLOW", f"{path!r} holds no workflow")
    if not is_ui_workflow(data) and not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise ArgumentError(
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


def parse_override(text: str, argument: str = "--set") -> Override:
    """``NODE.INPUT=VALUE``; NODE is an id, a title or a class name (may contain dots)."""
    target, equals, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not equals or not dot or not node.strip() or not name.strip():
        raise ArgumentError(argument, f"expected NODE.INPUT=VALUE, got {text!r}")
    return Override(node.strip(), name.strip(), parse_value(raw), raw, argument)


def resolve_node(prompt: dict, key: str, argument: str = "--set") -> str:
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
            raise ArgumentError(argument, f"{key!r} matches several nodes by {describe} ({', '.join(matches)}); use the id")
    known = ", ".join(f"{i} ({n.get('class_type')})" for i, n in sorted(prompt.items(), key=lambda kv: node_id_order(kv[0])))
    raise ArgumentError(argument, f"no node {key!r} in the workflow; nodes: {known}")


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
        argument = override.argument
        node_id = resolve_node(prompt, override.node, argument)
        node = prompt[node_id]
        inputs = node.setdefault("inputs", {})
        declared = _declared_inputs(object_info, node["class_type"])
        where = f"node {node_id} ({node['class_type']})"
        if declared is not None and override.input not in declared:
            raise ArgumentError(argument, f"{where} has no input {override.input!r}; inputs: {', '.join(declared)}")
        if declared is None and override.input not in inputs:
            raise ArgumentError(argument, f"{where} has no input {override.input!r}; inputs: {', '.join(inputs)}")
        if isinstance(inputs.get(override.input), list):
            source = inputs[override.input]
            raise ArgumentError(
                argument, f"{where}.{override.input} is connected to node {source[0]}; {argument} would cut the link"
            )
        value = override.value
        if declared is not None and not isinstance(value, str):
            kind = declared[override.input][0]
            if kind == "STRING" or isinstance(kind, list):
                value = override.raw
        if not _finite(value):  # JSON has no NaN or Infinity: the prompt could not be sent
            raise ArgumentError(
                argument, f"{override.node}.{override.input}={override.raw} is not a finite number; "
                "give a number such as 0.5"
            )
        inputs[override.input] = value
    return prompt


# --- running a prompt -----------------------------------------------------------------


def to_api_prompt(workflow: dict, object_info: dict) -> dict:
    """The API prompt of a workflow in either format."""
    if not is_ui_workflow(workflow):
        return json.loads(json.dumps(workflow))  # a copy
    problems = unsupported_nodes(workflow, object_info)
    if problems:
        listed = ", ".join(f"{node_id} ({kind})" for node_id, kind in problems)
        raise ArgumentError(
            "WORKFLOW",
            f"the server cannot run these nodes: {listed}. Install the missing node packs, or export the workflow "
            "from the editor in API format (Workflow > Export (API)) and queue that file",
        )
    return ui_to_api(workflow, object_info)


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
    stop: Optional[threading.Event] = None,
) -> dict:
    """Follow a queued prompt until it ends; return its history entry.

    With a websocket ``connection`` (opened *before* queueing, with the same
    client id) progress is shown live; the history is checked every few seconds
    anyway, so a missed message cannot hang the wait. ``stop`` set (Ctrl-C seen by
    another thread) raises ``KeyboardInterrupt`` here, as Ctrl-C itself would.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = _Progress(prompt, show_progress)
    next_check = time.monotonic() + (5.0 if connection is not None else 0.0)
    finished = False
    try:
        while True:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
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
    entry = server.history_entry(prompt_id)
    if entry is not None or prompt_id in server.queued_ids():
        return entry
    entry = server.history_entry(prompt_id)
    if entry is None:
        raise PromptLost(
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


@dataclass
class PreparedPrompt:
    """An API prompt ready for one server: inputs set, pictures uploaded."""

    prompt: dict
    extra_data: Optional[dict] = None


def prepare_prompt(
    server: Server,
    workflow: dict,
    workflow_path: str,
    overrides: list[Override],
    upload_workflow_images: bool = False,
    log: Callable[[str], None] = lambda text: None,
) -> PreparedPrompt:
    """The workflow as this server's API prompt, with the overrides set and their pictures uploaded.

    Only pictures named by ``--set`` are uploaded (and those named inside the
    workflow with ``upload_workflow_images``); each is listed before it is sent.
    """
    object_info = server.get_json("/object_info")
    prompt = to_api_prompt(workflow, object_info)
    apply_overrides(prompt, overrides, object_info)
    named = {(resolve_node(prompt, o.node), o.input): o.argument for o in overrides}
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
    if is_ui_workflow(workflow) and not overrides:
        extra = {"extra_pnginfo": {"workflow": workflow}}  # saved into PNG outputs, as the editor does
    return PreparedPrompt(prompt, extra)


def run_prompt(
    server: Server,
    prepared: PreparedPrompt,
    out_dir: Optional[str],
    timeout: Optional[float] = None,
    show_progress: bool = True,
    log: Callable[[str], None] = lambda text: None,
    stop: Optional[threading.Event] = None,
) -> QueueResult:
    """Queue a prepared prompt, wait for it to end, download its outputs into ``out_dir`` (None: none).

    Raises :class:`PromptError` with ComfyUI's message when the server refuses or
    fails the prompt, :class:`QueueInterrupted` on Ctrl-C or ``stop`` (saying what
    happened on the server), ``TimeoutError`` and ``requests`` errors otherwise.
    """
    client_id = uuid.uuid4().hex
    connection = _connect_websocket(server, client_id)
    try:
        try:
            prompt_id = server.submit(prepared.prompt, client_id, prepared.extra_data)
        except KeyboardInterrupt:
            raise QueueInterrupted("interrupted while queueing; the server may or may not have queued the prompt") from None
        log(f"queued prompt {prompt_id} on {server.url}")
        try:
            entry = wait_for(server, prompt_id, prepared.prompt, connection, timeout, show_progress, stop=stop)
        except KeyboardInterrupt:
            raise QueueInterrupted(_cancel_after_ctrl_c(server, prompt_id)) from None
        except TimeoutError as error:
            raise TimeoutError(f"{error}; {server.cancel(prompt_id)}") from error
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

    Raises :class:`ArgumentError` for bad arguments, and what :func:`run_prompt` raises.
    """
    workflow = load_workflow(workflow_path)
    parsed = [parse_override(text) for text in overrides]
    server = Server(server_url)
    prepared = prepare_prompt(server, workflow, workflow_path, parsed, upload_workflow_images, log)
    return run_prompt(server, prepared, out_dir, timeout, show_progress, log)


def _cancel_after_ctrl_c(server: Server, prompt_id: str) -> str:
    try:
        return server.cancel(prompt_id)
    except KeyboardInterrupt:
        return f"a second Ctrl-C stopped the cancel request: prompt {prompt_id} may still run on the server"

"""Converting ComfyUI workflows between the graph editor's (UI) format and the API format.

Pure dictionaries, no ComfyUI import: the widget order comes from the server's
``/object_info``. Used by the ``queue`` command (UI files in, API prompt out)
and to keep the bundled UI/API twins identical (the reverse direction, used only by the
template generator, is ``tests/workflow_ui.py``).
"""

from __future__ import annotations

from typing import Any, Optional

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}
BYPASSED, MUTED = 4, 2


def node_id_order(node_id: str):
    """Sort key of node ids: numbers in numeric order, then other ids."""
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def ordered_inputs(node_info: dict) -> list[tuple[str, Any, dict]]:
    """``(name, type, options)`` of a node class's inputs in the editor's order."""
    entries = []
    for group in ("required", "optional"):
        for name, spec in node_info["input"].get(group, {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            entries.append((name, spec[0], options))
    return entries


def is_widget(kind: Any, options: dict) -> bool:
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def extra_widget_values(name: str, kind: Any, options: dict, seed_by_name: bool = True) -> int:
    """Hidden companion widgets the editor stores after an input's value.

    ``control_after_generate`` (fixed / increment / randomize) follows an INT that
    declares it; frontends up to 1.3x also add it to any INT named like a seed
    (``seed_by_name``), newer ones do not.
    """
    if kind == "INT" and (options.get("control_after_generate") or (seed_by_name and name in SEED_NAMES)):
        return 1
    if options.get("image_upload"):
        return 1  # the upload button
    return 0


def widget_layout(node_info: dict, stored_values: int) -> list[tuple[str, int]]:
    """``(input name, companion values)`` of each widget, in the order of ``widgets_values``.

    Picks the seed rule (see :func:`extra_widget_values`) under which the node's
    stored value count fits, so files of old and new frontends both convert.
    """
    widgets = [(name, kind, options) for name, kind, options in ordered_inputs(node_info) if is_widget(kind, options)]
    layouts = [
        [(name, extra_widget_values(name, kind, options, by_name)) for name, kind, options in widgets]
        for by_name in (True, False)
    ]
    return next((layout for layout in layouts if sum(1 + extra for _, extra in layout) == stored_values), layouts[0])


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """API-format prompt of a UI-format workflow (muted nodes dropped, bypassed ones routed through)."""
    links = {link[0]: link for link in workflow.get("links", [])}
    nodes = {node["id"]: node for node in workflow["nodes"]}

    def source(link_id: int) -> Optional[list]:
        """``[node id, slot]`` feeding a link, through bypassed nodes; None when a bypass cuts it."""
        _, from_node, from_slot, _, _, kind = links[link_id]
        upstream = nodes[from_node]
        if upstream.get("mode") == BYPASSED:
            for candidate in upstream.get("inputs", []):
                if candidate.get("link") is not None and candidate.get("type") == kind:
                    return source(candidate["link"])
            return None
        if upstream.get("mode") == MUTED:
            return None
        return [str(from_node), from_slot]

    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode") in (BYPASSED, MUTED) or node["type"] not in object_info:
            continue
        linked = {entry["name"]: entry["link"] for entry in node.get("inputs", []) if entry.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        companions = dict(widget_layout(object_info[node["type"]], len(values)))
        inputs: dict[str, Any] = {}
        for name, kind, options in ordered_inputs(object_info[node["type"]]):
            if name in companions and values:
                value = values.pop(0)
                del values[: companions[name]]
                if name not in linked:
                    inputs[name] = value
            if name in linked:
                origin = source(linked[name])
                if origin is not None:
                    inputs[name] = origin
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            prompt[str(node["id"])]["_meta"] = {"title": node["title"]}
    return prompt


# Editor-only nodes: annotations the frontend never sends to the server.
ANNOTATION_TYPES = {"Note", "MarkdownNote"}


def is_ui_workflow(data: dict) -> bool:
    """True for the graph editor's format (``nodes`` list and ``links``), False for an API prompt."""
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def unsupported_nodes(workflow: dict, object_info: dict) -> list[tuple[str, str]]:
    """``(id, type)`` of active nodes :func:`ui_to_api` cannot convert for this server.

    Types the server does not know (a missing node pack) and frontend-only helpers
    that need the editor to resolve them (Reroute, PrimitiveNode, subgraphs);
    muted/bypassed nodes and notes are ignored.
    """
    problems = []
    for node in workflow.get("nodes", []):
        if node.get("mode") in (BYPASSED, MUTED) or node.get("type") in ANNOTATION_TYPES:
            continue
        if node.get("type") not in object_info:
            problems.append((str(node.get("id")), str(node.get("type"))))
    return problems

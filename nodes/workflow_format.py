"""Converting ComfyUI workflows between the graph editor's (UI) format and the API format.

Pure dictionaries, no ComfyUI import: the widget order comes from the server's
``/object_info``. Used by the ``queue`` command (UI files in, API prompt out)
and to keep the bundled UI/API twins identical.
"""

from __future__ import annotations

from typing import Any, Optional

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}
BYPASSED, MUTED = 4, 2


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


def api_to_ui(prompt: dict, object_info: dict, column_width: int = 380, bypassed: Optional[dict] = None) -> dict:
    """A UI-format workflow of an API prompt, laid out left to right by depth.

    ``bypassed`` adds optional nodes shown bypassed (mode 4) in the editor:
    ``{id: {"class_type", "inputs", "_meta", "feeds": {consumer id: input name}}}``
    (each feeds its output 0). They vanish again in :func:`ui_to_api`.
    """
    prompt = {key: {**spec, "inputs": dict(spec["inputs"])} for key, spec in prompt.items()}
    for node_id, spec in (bypassed or {}).items():
        prompt[node_id] = {k: v for k, v in spec.items() if k != "feeds"}
        for consumer, input_name in spec["feeds"].items():
            prompt[consumer]["inputs"][input_name] = [node_id, 0]
    depth: dict[str, int] = {}

    def depth_of(node_id: str) -> int:
        if node_id not in depth:
            parents = [v[0] for v in prompt[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((depth_of(p) for p in parents), default=-1)
        return depth[node_id]

    order = sorted(prompt, key=lambda i: (depth_of(i), int(i)))
    links, ui_nodes, rows = [], {}, {}
    for position, node_id in enumerate(order):
        spec = prompt[node_id]
        info = object_info[spec["class_type"]]
        column = depth_of(node_id)
        row = rows.get(column, 0)
        node = {
            "id": int(node_id),
            "type": spec["class_type"],
            "pos": [40 + column * column_width, 40 + row],
            "size": [column_width - 40, 0],
            "flags": {},
            "order": position,
            "mode": BYPASSED if node_id in (bypassed or {}) else 0,
            "inputs": [],
            "outputs": [
                {"name": name, "type": kind, "links": [], "slot_index": slot}
                for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"]))
            ],
            "properties": {"Node name for S&R": spec["class_type"]},
            "widgets_values": [],
        }
        if "_meta" in spec:
            node["title"] = spec["_meta"]["title"]
        for name, kind, options in ordered_inputs(info):
            value = spec["inputs"].get(name)
            widget = is_widget(kind, options)
            if isinstance(value, list):
                link_id = len(links) + 1
                from_id, from_slot = value
                link_type = object_info[prompt[from_id]["class_type"]]["output"][from_slot]
                links.append([link_id, int(from_id), from_slot, int(node_id), len(node["inputs"]), link_type])
                entry = {"name": name, "type": link_type, "link": link_id}
                if widget:  # a linked widget keeps a (unused) value in the editor
                    entry["widget"] = {"name": name}
                    value = options.get("default", kind[0] if isinstance(kind, list) and kind else "")
                node["inputs"].append(entry)
            if widget and name in spec["inputs"]:
                node["widgets_values"].append(value)
                if extra_widget_values(name, kind, options):
                    node["widgets_values"].append("image" if options.get("image_upload") else "fixed")
        widgets = len(node["widgets_values"])
        node["size"][1] = 60 + 26 * (widgets + max(len(node["inputs"]), len(node["outputs"])))
        rows[column] = row + node["size"][1] + 60
        ui_nodes[node_id] = node
    for link_id, from_id, from_slot, _, _, _ in links:
        ui_nodes[str(from_id)]["outputs"][from_slot]["links"].append(link_id)
    return {
        "last_node_id": max(int(i) for i in prompt),
        "last_link_id": len(links),
        "nodes": [ui_nodes[i] for i in order],
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
        "version": 0.4,
    }


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

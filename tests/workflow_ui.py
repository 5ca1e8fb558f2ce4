"""The UI-format workflow of an API prompt: how the template generator (tests/make_ui_workflows.py)
lays out the bundled workflows. The queue client only needs the other direction
(:func:`text2cinemagraph.nodes.client.workflow_format.ui_to_api`)."""

from __future__ import annotations

from typing import Optional

from text2cinemagraph.nodes.client.workflow_format import BYPASSED, extra_widget_values, is_widget, ordered_inputs


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

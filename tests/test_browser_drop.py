"""A file written by LoopVideoWriter, dropped on ComfyUI's editor, gives its graph back.

The graph is built in the editor, converted with ``app.graphToPrompt`` and run
by the server (so the prompt and workflow reach the node through its hidden
``PROMPT`` / ``EXTRA_PNGINFO`` inputs, as for a user). The written file is
fetched from ``/view`` into the page, wrapped in a File with the type a
browser gives a dropped file, and opened with ``app.handleFile`` (what a
drop does). Every format the frontend reads is covered; gif is not readable
by it. The ``editor`` fixture (conftest.py) runs it against every tested
frontend, each served by its own ComfyUI server.
"""

from __future__ import annotations

import pytest

from editor_harness import load

# format -> the MIME type a browser gives the dropped file (the frontend picks its parser by it)
READABLE_FORMATS = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "webp": "image/webp",
    "apng": "image/png",
    "png-sequence": "image/png",  # one frame of the sequence
}

BUILD_GRAPH = """async ([format, prefix]) => {
    app.graph.clear();
    const source = LiteGraph.createNode("EmptyImage");
    app.graph.add(source);
    const writer = LiteGraph.createNode("LoopVideoWriter");
    app.graph.add(writer);
    source.connect(0, writer, 0);
    const set = (node, name, value) => { node.widgets.find(w => w.name === name).value = value; };
    set(source, "width", 48); set(source, "height", 32); set(source, "batch_size", 4);
    set(writer, "format", format); set(writer, "filename_prefix", prefix);
    const converted = await app.graphToPrompt();
    return [converted.output, converted.workflow, writer.id];
}"""

DROP = """async ([url, name, type]) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
    const file = new File([await response.blob()], name, {type});
    app.graph.clear();
    await app.handleFile(file);
    return app.graph.nodes.map(n => ({
        id: n.id, type: n.type,
        widgets: Object.fromEntries((n.widgets || []).map(w => [w.name, w.value])),
    }));
}"""


@pytest.mark.parametrize("fmt", list(READABLE_FORMATS))
def test_dropped_output_restores_its_graph(editor, fmt):
    _, server, page = editor
    load(page, {"last_node_id": 0, "last_link_id": 0, "nodes": [], "links": [], "version": 0.4})
    prompt, workflow, writer_id = page.evaluate(BUILD_GRAPH, [fmt, f"t2c_drop/{fmt}"])
    response = server.queue(prompt, workflow=workflow)
    assert response.status_code == 200, response.text
    entry = server.wait(response.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    written = entry["outputs"][str(writer_id)]["images"][0]

    url = "/view?" + "&".join(f"{key}={written[key]}" for key in ("filename", "subfolder", "type"))
    nodes = page.evaluate(DROP, [server.url + url, written["filename"], READABLE_FORMATS[fmt]])

    def graph(node_list):  # newer frontends give the restored nodes string ids
        return sorted((str(n["id"]), n["type"]) for n in node_list)

    assert graph(nodes) == graph(workflow["nodes"])
    writer = next(n for n in nodes if n["type"] == "LoopVideoWriter")
    assert writer["widgets"]["format"] == fmt and writer["widgets"]["filename_prefix"] == f"t2c_drop/{fmt}"
    source = next(n for n in nodes if n["type"] == "EmptyImage")
    assert (source["widgets"]["width"], source["widgets"]["height"], source["widgets"]["batch_size"]) == (48, 32, 4)


def test_a_file_without_workflow_restores_nothing(editor):
    """The check above can fail: a file without metadata restores no graph (newer frontends add a loader node)."""
    import os

    import torch

    _, server, page = editor

    from text2cinemagraph.nodes.stages.video import write_loop

    folder = os.path.join(server.output_dir, "t2c_drop")
    path = write_loop(torch.rand(3, 32, 48, 3), os.path.join(folder, "bare"), format="webp")
    url = f"{server.url}/view?filename={os.path.basename(path)}&subfolder=t2c_drop&type=output"
    nodes = page.evaluate(DROP, [url, os.path.basename(path), "image/webp"])
    assert not any(n["type"] in ("LoopVideoWriter", "EmptyImage") for n in nodes)
    assert all(n["type"] == "LoadImage" for n in nodes)

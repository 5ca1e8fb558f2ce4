"""Motion drawn with the mouse on MotionBrush's canvas, in both tested frontends, rendered by the server.

The bundled ``draw_motion`` template is opened with an empty drawing; two regions are painted, two
opposite arrows drawn and an anchor shift-clicked with Playwright's mouse, on the node's canvas
(web/js/motion_brush.js). The editor's prompt is then run on a textured picture (uploaded, so the
motion is measurable), and the written frames are measured: each region moves within 10 degrees of
its arrow and the anchor's pixels are the same in every frame.

Before any run, the canvas shows the picture of the node upstream: the template's example picture,
then a LoadImage connected in its place; and the example picture in Nodes 2.0 (Vue nodes) too.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import requests
import torch
from PIL import Image

import editor_harness as editor_page
from conftest import REPO
from motion_measure import angle_of, mean_motion, smooth_texture
from text2cinemagraph.nodes.stages.drawn_motion import anchor_disks, parse_drawing

SIZE = 512
TEXTURE = "t2c_draw_texture.png"
STROKES = ((40, 130, 470, 130), (40, 380, 470, 380))  # one painted band per region
ARROWS = ((100, 134, 400, 126), (420, 376, 120, 386))  # rightwards in the top band, leftwards below
ANCHOR = (300, 380)

CANVAS_GEOMETRY = """() => {
    const canvas = document.querySelector('.t2c-drawing-canvas');
    const rect = canvas.getBoundingClientRect();
    return [rect.x, rect.y, rect.width, canvas.clientWidth, canvas.clientHeight];
}"""
# The canvas's colours at 7 x 7 points of the drawing (0..1), once it holds a picture; null before.
CANVAS_SAMPLES = """() => {
    const node = app.graph._nodes.find(n => n.type === 'MotionBrush');
    const view = node.t2cDrawing;
    if (!view.picture || !view.canvas.clientWidth) return null;
    const { scale, left, top } = view.frame();
    const { width, height } = view.drawing;
    const ratio = view.canvas.width / view.canvas.clientWidth;
    const ctx = view.canvas.getContext('2d');
    const samples = [];
    for (let i = 1; i < 8; i++) for (let j = 1; j < 8; j++) {
        const x = width * i / 8, y = height * j / 8;
        const at = [Math.round((left + x * scale) * ratio), Math.round((top + y * scale) * ratio)];
        samples.push([x / width, y / height, ...[...ctx.getImageData(...at, 1, 1).data].slice(0, 3).map(v => v / 255)]);
    }
    return samples;
}"""
CONNECT_LOAD_IMAGE = """name => {
    const brush = app.graph._nodes.find(n => n.type === 'MotionBrush');
    const loader = LiteGraph.createNode('LoadImage');
    app.graph.add(loader);
    loader.widgets.find(w => w.name === 'image').value = name;
    loader.connect(0, brush, brush.inputs.findIndex(i => i.name === 'image'));
}"""
DRAWING_VALUE = """() => app.graph._nodes.find(n => n.type === 'MotionBrush')
    .widgets.find(w => w.name === 'drawing').value"""


def upload_texture(server) -> torch.Tensor:
    picture = (smooth_texture(SIZE, SIZE, seed=21, cell=8) * 255).round().byte()
    buffer = io.BytesIO()
    Image.fromarray(picture.numpy()).save(buffer, format="PNG")
    files = {"image": (TEXTURE, buffer.getvalue(), "image/png")}
    response = requests.post(f"{server.url}/upload/image", files=files, data={"overwrite": "true"}, timeout=60)
    assert response.status_code == 200, response.text
    return picture


def template_with_empty_drawing() -> dict:
    workflow = json.loads(Path(REPO, "workflows", "draw_motion.json").read_text())
    brush = next(n for n in workflow["nodes"] if n["type"] == "MotionBrush")
    empty = {"version": 1, "width": SIZE, "height": SIZE, "arrows": [], "anchors": []}
    brush["widgets_values"][0] = json.dumps(empty)
    return workflow


class CanvasMouse:
    """Playwright's mouse in the drawing's pixel coordinates (the canvas letterboxes the picture)."""

    def __init__(self, page):
        self.page = page
        left, top, width, client_w, client_h = page.evaluate(CANVAS_GEOMETRY)
        self.zoom = width / client_w
        self.scale = min(client_w, client_h) / SIZE
        self.origin = (left + (client_w - SIZE * self.scale) / 2 * self.zoom,
                       top + (client_h - SIZE * self.scale) / 2 * self.zoom)

    def at(self, x: float, y: float) -> tuple[float, float]:
        return self.origin[0] + x * self.scale * self.zoom, self.origin[1] + y * self.scale * self.zoom

    def drag(self, x0, y0, x1, y1) -> None:
        self.page.mouse.move(*self.at(x0, y0))
        self.page.mouse.down()
        self.page.mouse.move(*self.at(x1, y1), steps=12)
        self.page.mouse.up()

    def shift_click(self, x, y) -> None:
        self.page.keyboard.down("Shift")
        self.page.mouse.click(*self.at(x, y))
        self.page.keyboard.up("Shift")


def draw(page) -> dict:
    page.click(".t2c-motion-brush button[data-action=region]")
    mouse = CanvasMouse(page)
    for stroke in STROKES:
        mouse.drag(*stroke)
    page.click(".t2c-motion-brush button[data-action=arrow]")
    for arrow in ARROWS:
        mouse.drag(*arrow)
    mouse.shift_click(*ANCHOR)
    return json.loads(page.evaluate(DRAWING_VALUE))


def prompt_on_texture(page) -> dict:
    prompt, _ = editor_page.editor_prompt(page)
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "T2CExampleImage":
            node.update(class_type="LoadImage", inputs={"image": TEXTURE})
        elif kind == "MotionBrush":
            inputs.pop("mask")  # the regions are the painted ones
            inputs["speed"] = 1.0
        elif kind == "EulerIntegrate":
            inputs["frames"] = 12
        elif kind == "LoopVideoWriter":
            inputs.update(format="png-sequence", filename_prefix="t2c_tests/draw_motion")
    return prompt


def frames_of(server, entry: dict) -> torch.Tensor:
    files = next(out["images"] for out in entry["outputs"].values() if len(out.get("images", [])) > 1)
    frames = [np.asarray(Image.open(io.BytesIO(server.view(f))).convert("RGB")) for f in files]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def test_arrows_and_an_anchor_drawn_with_the_mouse_move_the_server_output(editor):
    version, server, page = editor
    picture = upload_texture(server)
    assert editor_page.load(page, template_with_empty_drawing()) == []
    drawing = draw(page)
    assert len(drawing["regions"]) == 2 and len(drawing["arrows"]) == 2 and len(drawing["anchors"]) == 1, drawing
    for drawn, meant in zip(drawing["arrows"], ARROWS):
        assert np.allclose([drawn[k] for k in ("x0", "y0", "x1", "y1")], meant, atol=3), (version, drawn)

    entry = server.run(prompt_on_texture(page), timeout=600)
    video = frames_of(server, entry)
    assert len(video) == 12 and torch.equal((video[0] * 255).round().byte(), picture)
    parsed = parse_drawing(json.dumps(drawing))
    away_from_anchor = ~anchor_disks(parsed.anchors, SIZE, SIZE, extra=30)
    for (_, y, _, _), arrow in zip(STROKES, parsed.arrows):
        band = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        band[y - 8 : y + 9, 80:440] = True
        dx, dy = mean_motion(video, band & away_from_anchor, range(2, 9))
        measured, wanted = angle_of(dx, dy), angle_of(arrow.x1 - arrow.x0, arrow.y1 - arrow.y0)
        assert abs((measured - wanted + 180) % 360 - 180) <= 10.0, (version, measured, wanted)
    held = anchor_disks(parsed.anchors, SIZE, SIZE)
    assert held.sum() > 500
    for frame in video:
        assert torch.equal(frame[held], video[0][held])


def canvas_difference(page, picture: torch.Tensor) -> float:
    """Mean absolute difference (0..1) between the canvas and ``picture [H, W, 3]`` uint8 at 49 points."""
    page.wait_for_function(CANVAS_SAMPLES, timeout=10_000)
    height, width = picture.shape[:2]
    differences = []
    for u, v, *rgb in page.evaluate(CANVAS_SAMPLES):
        expected = picture[int(v * height), int(u * width)].float() / 255.0
        differences.append((torch.tensor(rgb) - expected).abs().mean())
    return float(torch.stack(differences).mean())


def test_the_canvas_shows_the_upstream_picture_before_any_run(editor):
    version, server, page = editor
    texture = upload_texture(server)
    lake = torch.from_numpy(np.array(Image.open(Path(REPO, "workflows", "assets", "lake.png")).convert("RGB")))
    assert editor_page.load(page, template_with_empty_drawing()) == []
    # The canvas shows the 512 px picture at about 300 px: the texture's fine detail blurs a little.
    assert canvas_difference(page, lake) < 0.08, version  # T2CExampleImage's picture, no run
    page.evaluate(CONNECT_LOAD_IMAGE, TEXTURE)
    page.wait_for_function(
        "() => app.graph._nodes.find(n => n.type === 'MotionBrush').t2cDrawing.picture?.src.includes('t2c_draw')"
    )
    assert canvas_difference(page, texture) < 0.08, version
    assert canvas_difference(page, lake) > 0.16  # it did change


VUE_NODES = "async on => { await app.extensionManager.setting.set('Comfy.VueNodes.Enabled', on); }"


def test_nodes_2_0_canvas_shows_the_upstream_picture_before_any_run(editor):
    version, _, page = editor
    lake = torch.from_numpy(np.array(Image.open(Path(REPO, "workflows", "assets", "lake.png")).convert("RGB")))
    page.evaluate(VUE_NODES, True)  # a server setting: set back below for the other tests
    try:
        assert editor_page.load(page, template_with_empty_drawing()) == []
        in_vue_node = "() => document.querySelector('.t2c-drawing-canvas')?.closest('[data-node-id]') != null"
        assert page.evaluate(in_vue_node), version  # the canvas sits in a Nodes 2.0 (Vue) node
        assert canvas_difference(page, lake) < 0.08, version
    finally:
        page.evaluate(VUE_NODES, False)


def test_undo_and_clear(editor):
    _, _, page = editor
    assert editor_page.load(page, template_with_empty_drawing()) == []
    mouse = CanvasMouse(page)
    mouse.drag(*ARROWS[0])
    mouse.drag(*ARROWS[1])
    assert len(json.loads(page.evaluate(DRAWING_VALUE))["arrows"]) == 2
    page.click(".t2c-motion-brush button[data-action=undo]")
    assert len(json.loads(page.evaluate(DRAWING_VALUE))["arrows"]) == 1
    page.click(".t2c-motion-brush button[data-action=clear]")
    assert json.loads(page.evaluate(DRAWING_VALUE))["arrows"] == []
    page.click(".t2c-motion-brush button[data-action=undo]")
    assert len(json.loads(page.evaluate(DRAWING_VALUE))["arrows"]) == 1

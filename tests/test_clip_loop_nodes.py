"""LoopClip, ClipFlow and T2CExampleClip inside ComfyUI imported in-process (progress bars, core VIDEO)."""

from __future__ import annotations

import pytest
import torch

from comfy_inprocess import import_comfy
from test_clip_loop import seam_ratio, synthetic
from text2cinemagraph.kernels.errors import InputError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def nodes():
    import_comfy()
    from text2cinemagraph.nodes import registry

    return registry


def test_every_new_node_is_registered_with_tooltips_and_a_description(nodes):
    for name in ("LoopClip", "ClipFlow", "T2CExampleClip"):
        node = nodes.NODE_CLASS_MAPPINGS[name]
        assert name in nodes.NODE_DISPLAY_NAME_MAPPINGS and node.DESCRIPTION and node.CATEGORY
        inputs = node.INPUT_TYPES()
        for group in ("required", "optional"):
            for input_name, spec in inputs.get(group, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_loop_clip_node_loops_an_image_batch_and_outputs_the_derived_mask(nodes):
    clip, region = synthetic((1.0, 0.5), frames=24, size=64)
    frames, mask = nodes.LoopClip().loop(reference=2, threshold=0.015, speckle=2, frames=0, blend=4, images=clip)
    assert frames.shape[1:] == clip.shape[1:] and 12 <= frames.shape[0] <= 20
    assert mask.shape == (1, 64, 64)
    still = mask[0] < 0.5
    assert (frames[:, still] == clip[2][still]).all()
    assert float((mask[0].bool() & region).sum() / (mask[0].bool() | region).sum()) > 0.85
    assert seam_ratio(frames, mask[0].bool()) <= 1.5


def test_clip_flow_node_feeds_the_eulerian_chain_from_a_core_video(nodes):
    from text2cinemagraph.nodes._comfy import video_output

    clip, region = synthetic((-1.0, 0.0), frames=16, size=64)
    video = video_output(clip, 24.0)
    flow, image, mask, preview = nodes.ClipFlow().measure(reference=0, threshold=0.015, speckle=2, video=video,
                                                           mask=region.float()[None])
    assert flow.shape == (2, 64, 64) and preview.shape == (1, 64, 64, 3)
    assert torch.equal(image[0], clip[0]) and torch.equal(mask[0].bool(), region)
    assert float(flow[0][region].mean()) < -0.7 and not flow[:, ~region].any()
    (motion,) = nodes.NODE_CLASS_MAPPINGS["EulerIntegrate"]().integrate(flow, 12)
    (frames,) = nodes.NODE_CLASS_MAPPINGS["SymmetricSplatFrameGen"]().render(image, motion, "pixel")
    assert frames.shape == (12, 64, 64, 3)
    assert (frames[:, ~region] == clip[0][~region]).all()
    assert seam_ratio(frames, region) <= 1.5


def test_the_nodes_name_their_inputs_when_the_clip_is_wrong(nodes):
    clip, _ = synthetic((1.0, 0.5), frames=12, size=32)
    with pytest.raises(InputError, match="^images: connect the clip to exactly one"):
        nodes.LoopClip().loop(0, 0.015, 2, 0, 4)
    with pytest.raises(InputError, match="^images: has 2 frame"):
        nodes.ClipFlow().measure(0, 0.015, 2, images=clip[:2])
    with pytest.raises(InputError, match="^mask: is 16x16 but the clip is 32x32"):
        nodes.ClipFlow().measure(0, 0.015, 2, images=clip, mask=torch.ones(1, 16, 16))


def test_example_clip_flickers_outside_its_water_and_moves_inside(nodes):
    images, mask = nodes.T2CExampleClip().make("lake", 10, 96)
    assert images.shape == (10, 96, 96, 3) and mask.shape == (1, 96, 96)
    still = mask[0] < 0.5
    assert float((images[1, still] - images[0, still]).abs().mean()) > 0.005  # the background is not still
    frames, derived = nodes.LoopClip().loop(0, 0.015, 2, 0, 2, images=images)
    assert (frames[:, derived[0] < 0.5] == images[0][derived[0] < 0.5]).all()


def test_motion_brush_anchors_pin_a_clips_flow(nodes):
    import json

    clip, region = synthetic((1.0, 0.5), frames=16, size=64)
    flow, image, mask, _ = nodes.ClipFlow().measure(0, 0.015, 2, images=clip, mask=region.float()[None])
    anchor = {"x": 32, "y": 32, "radius": 4}
    drawing = json.dumps({"version": 1, "width": 64, "height": 64, "arrows": [], "anchors": [anchor]})
    brush = nodes.NODE_CLASS_MAPPINGS["MotionBrush"]()
    pinned, preview, moving = brush.predict(image, drawing, "procedural", 0.5, flow=flow)["result"]
    assert not pinned[:, 28:37, 28:37].any()  # still at the anchor
    far = region.clone()
    far[20:45, 20:45] = False
    assert torch.equal(pinned[:, far], flow[:, far])  # the clip's own motion elsewhere
    moves = moving[0] > 0.5
    assert not (moves & ~region).any() and not moves[28:37, 28:37].any() and moves[far].all()
    assert preview[0, 32, 36].max() == 0  # the anchor's ring, drawn on the preview
    with pytest.raises(InputError, match="^drawing: has arrows while a flow is connected"):
        arrow = {"x0": 10, "y0": 30, "x1": 20, "y1": 30}
        brush.predict(image, json.dumps({"version": 1, "width": 64, "height": 64, "arrows": [arrow]}),
                      "procedural", 0.5, flow=flow)


def test_both_nodes_stop_on_cancel_and_report_progress_to_the_end(nodes, monkeypatch):
    import comfy.model_management as mm
    import comfy.utils

    clip, _ = synthetic((1.0, 0.5), frames=12, size=32)
    reported = []
    real = comfy.utils.ProgressBar

    class Recorded(real):
        def update_absolute(self, value, total=None, preview=None):
            reported.append((value, total))
            super().update_absolute(value, total, preview)

    monkeypatch.setattr(comfy.utils, "ProgressBar", Recorded)
    nodes.LoopClip().loop(0, 0.015, 2, 0, 2, images=clip)
    values = [value for value, _ in reported]
    assert values == sorted(values) and reported[-1][0] <= reported[-1][1] and len(values) > 2 * 12
    for run in (lambda: nodes.LoopClip().loop(0, 0.015, 2, 0, 2, images=clip),
                lambda: nodes.ClipFlow().measure(0, 0.015, 2, images=clip)):
        mm.interrupt_current_processing(True)
        try:
            with pytest.raises(mm.InterruptProcessingException):
                run()
        finally:
            mm.interrupt_current_processing(False)

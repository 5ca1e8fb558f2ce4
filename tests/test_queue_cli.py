"""``python -m text2cinemagraph queue``: a workflow file run on a real ComfyUI server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import av
import pytest

from conftest import REPO
from text2cinemagraph.__main__ import main
from text2cinemagraph.nodes.client import queue as client
from text2cinemagraph.nodes.client.errors import ArgumentError, PromptError
from text2cinemagraph.nodes.client.files import download_outputs
from text2cinemagraph.nodes.client.server import Server, describe_refusal

API_WORKFLOW = os.path.join(REPO, "workflows", "api", "animate_picture.json")
UI_WORKFLOW = os.path.join(REPO, "workflows", "animate_picture.json")


def frame_count(path: str) -> int:
    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


def videos_in(folder) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.mp4"))


# --- against the server -----------------------------------------------------------------


def test_queue_command_downloads_the_video_with_the_set_frame_count(comfy_server, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable, "-m", "text2cinemagraph", "queue", API_WORKFLOW,
            "--server", comfy_server.url, "--out", str(out),
            "--set", "3.frames=6", "--set", "T2C Flow Predictor.seed=31",
            "--set", "LoopVideoWriter.filename_prefix=t2c_cli/run",
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split()
    (video,) = [p for p in listed if p.endswith(".mp4")]
    assert video.startswith(str(out / "t2c_cli" / "run_"))  # the STRING input took the text as typed
    assert frame_count(video) == 6  # --set frames=6 (the file says 60)
    previews = [p for p in listed if os.sep + "previews" + os.sep in p]
    assert len(previews) == 1 and previews[0].endswith(".png")  # the flow preview (a temp output)
    assert set(listed) == {str(p) for p in out.rglob("*") if p.is_file()}
    assert "nodes" in result.stderr  # tqdm progress went to stderr


def test_ui_format_workflow_with_a_local_picture_is_uploaded_and_runs(comfy_server, tmp_path, capsys):
    picture = tmp_path / "my lake.png"
    shutil.copy(os.path.join(REPO, "workflows", "assets", "t2c_lake_masked.png"), picture)
    out = tmp_path / "out"
    with open(UI_WORKFLOW) as handle:  # the template with its example node swapped for LoadImage
        workflow = json.load(handle)
    (example,) = [n for n in workflow["nodes"] if n["type"] == "T2CExampleImage" and n["id"] == 1]
    example.update(type="LoadImage", widgets_values=["t2c_lake_masked.png", "image"])
    ui_workflow = tmp_path / "animate_my_picture.json"
    ui_workflow.write_text(json.dumps(workflow))
    code = main([
        "queue", str(ui_workflow), "--server", comfy_server.url, "--out", str(out), "--quiet",
        "--set", f"1.image={picture}", "--set", "EulerIntegrate.frames=5",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"uploaded {picture}" in captured.err
    assert (comfy_server.input_dir / "my lake.png").read_bytes() == picture.read_bytes()
    (video,) = videos_in(out)
    assert frame_count(video) == 5


def test_out_of_range_value_exits_non_zero_with_comfyuis_message(comfy_server, tmp_path, capsys):
    code = main(["queue", API_WORKFLOW, "--server", comfy_server.url, "--out", str(tmp_path), "--quiet",
                 "--set", "3.frames=0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "node 3 (EulerIntegrate): Value 0 smaller than min of 1: frames" in err
    assert videos_in(tmp_path) == []
    # The server accepted the valid half (the flow preview); the command cancelled it.
    # Cancelling is asynchronous: wait until the queue is empty before the next test.
    deadline = time.monotonic() + 60
    while comfy_server.get_json("/queue") != {"queue_running": [], "queue_pending": []}:
        assert time.monotonic() < deadline, "the cancelled prompt never left the queue"
        time.sleep(0.1)


def test_execution_error_exits_non_zero_with_the_nodes_exception(comfy_server, tmp_path, capsys):
    code = main(["queue", API_WORKFLOW, "--server", comfy_server.url, "--out", str(tmp_path), "--quiet",
                 "--set", "2.direction=sideways please", "--set", "3.frames=4"])
    err = capsys.readouterr().err
    assert code == 1
    assert "node 2 (FlowPredictor) failed: InputError: direction: unknown direction 'sideways please'" in err
    assert videos_in(tmp_path) == []


def test_unknown_node_or_input_is_a_usage_error(comfy_server, capsys):
    assert main(["queue", API_WORKFLOW, "--server", comfy_server.url, "--set", "NoSuchNode.frames=3"]) == 2
    assert "no node 'NoSuchNode' in the workflow" in capsys.readouterr().err
    assert main(["queue", API_WORKFLOW, "--server", comfy_server.url, "--set", "3.framez=3"]) == 2
    assert "node 3 (EulerIntegrate) has no input 'framez'; inputs: flow, frames" in capsys.readouterr().err


def test_without_websocket_client_it_polls_the_history(comfy_server, tmp_path, monkeypatch):
    monkeypatch.setattr(client, "_connect_websocket", lambda server, client_id: None)
    result = client.queue_workflow(
        comfy_server.url, API_WORKFLOW, ["3.frames=3", "2.seed=77"], out_dir=str(tmp_path),
        show_progress=False, log=lambda text: None,
    )
    assert result.history["status"]["status_str"] == "success"
    (video,) = [p for p in result.files if p.endswith(".mp4")]
    assert frame_count(video) == 3


# --- offline pieces ---------------------------------------------------------------------


PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}, "_meta": {"title": "Picture"}},
    "2": {"class_type": "EulerIntegrate", "inputs": {"flow": ["5", 0], "frames": 60}, "_meta": {"title": "Move.it"}},
    "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}, "_meta": {"title": "Picture"}},
}
OBJECT_INFO = {
    "EulerIntegrate": {"input": {"required": {"flow": ["T2C_FLOW", {}], "frames": ["INT", {"min": 1}]}}},
    "LoadImage": {"input": {"required": {"image": [["a.png", "b.png"], {"image_upload": True}]}}},
}


def test_override_syntax_and_values():
    assert client.parse_override("Move.it.frames=8") == client.Override("Move.it", "frames", 8, "8")
    assert client.parse_override("2.speed=0.5").value == 0.5
    assert client.parse_override("2.direction=left to right").value == "left to right"
    assert client.parse_override('2.direction="8"').value == "8"
    assert client.parse_override("2.flag=true").value is True
    for bad in ("frames=8", "2.frames", ".frames=8", "2.=8"):
        with pytest.raises(ArgumentError):
            client.parse_override(bad)


def test_node_lookup_by_id_title_and_class():
    assert client.resolve_node(PROMPT, "2") == "2"
    assert client.resolve_node(PROMPT, "Move.it") == "2"
    assert client.resolve_node(PROMPT, "eulerintegrate") == "2"
    assert client.resolve_node(PROMPT, "LoadImage") == "1"
    with pytest.raises(ArgumentError, match="several nodes by title"):
        client.resolve_node(PROMPT, "Picture")
    with pytest.raises(ArgumentError, match="several nodes by class"):
        client.resolve_node(PROMPT, "PreviewImage")


def test_overrides_respect_links_and_declared_types():
    prompt = json.loads(json.dumps(PROMPT))
    client.apply_overrides(prompt, [client.parse_override("Move.it.frames=12"),
                                    client.parse_override("1.image=7")], OBJECT_INFO)
    assert prompt["2"]["inputs"]["frames"] == 12
    assert prompt["1"]["inputs"]["image"] == "7"  # a combo keeps the text, not the number 7
    with pytest.raises(ArgumentError, match="connected to node 5"):
        client.apply_overrides(prompt, [client.parse_override("2.flow=1")], OBJECT_INFO)


def test_refusal_message_names_nodes_and_inputs():
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                  "details": ""},
        "node_errors": {"3": {"class_type": "EulerIntegrate", "errors": [
            {"type": "value_smaller_than_min", "message": "Value 0 smaller than min of 1", "details": "frames"}]}},
    }
    assert describe_refusal(body) == (
        "Prompt outputs failed validation\nnode 3 (EulerIntegrate): Value 0 smaller than min of 1: frames"
    )


def test_output_files_are_kept_inside_the_out_folder(tmp_path):
    entry = {"outputs": {"9": {"images": [{"filename": "../../escape.png", "subfolder": "", "type": "output"}]}}}
    with pytest.raises(PromptError, match="outside the output folder"):
        download_outputs(Server("http://127.0.0.1:9"), entry, str(tmp_path))


def test_non_workflow_json_is_refused(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ArgumentError, match="neither a UI workflow"):
        client.load_workflow(str(path))


def test_ui_workflow_with_nodes_the_server_lacks_is_refused_before_queueing():
    workflow = {
        "nodes": [
            {"id": 1, "type": "LoadImage", "mode": 0, "inputs": [], "widgets_values": ["a.png", "image"]},
            {"id": 2, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 1}]},
            {"id": 3, "type": "Note", "mode": 0, "widgets_values": ["just a note"]},
            {"id": 4, "type": "SomePackNode", "mode": 4, "inputs": []},  # bypassed: ignored
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    with pytest.raises(ArgumentError, match=r"cannot run these nodes: 2 \(Reroute\).*Export \(API\)"):
        client.to_api_prompt(workflow, OBJECT_INFO)
    del workflow["nodes"][1]
    assert client.to_api_prompt(workflow, OBJECT_INFO) == {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}
    }

"""``python -m text2cinemagraph queue --batch``: a folder of pictures on two real ComfyUI servers,
resumed, with a failing picture, and with one server killed mid-batch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import av
import pytest
from PIL import Image

from comfy_harness import ComfyServer
from conftest import ASSETS, REPO
from text2cinemagraph.__main__ import main
from text2cinemagraph.nodes.client.batch import parse_batch
from text2cinemagraph.nodes.client.errors import ArgumentError

MASKED_LAKE = os.path.join(ASSETS, "t2c_lake_masked.png")  # its alpha channel is the region that moves


def start_server(request, base) -> ComfyServer:
    server = ComfyServer(request.config.getoption("--comfyui"), base)
    server.start()
    return server


@pytest.fixture(scope="module")
def second_server(request, tmp_path_factory):
    server = start_server(request, tmp_path_factory.mktemp("comfy_second"))
    yield server
    server.stop()


def write_workflow(folder) -> str:
    """animate_picture with its example node swapped for a LoadImage (the batch's input)."""
    with open(os.path.join(REPO, "workflows", "api", "animate_picture.json")) as handle:
        prompt = json.load(handle)
    prompt["1"] = {"class_type": "LoadImage", "inputs": {"image": "t2c_lake_masked.png"}}
    path = folder / "workflow.json"
    path.write_text(json.dumps(prompt))
    return str(path)


def lake_pictures(folder, names: list[str]) -> None:
    """Distinct pictures (one pixel differs), so that no server answers a job from its cache."""
    folder.mkdir()
    with Image.open(MASKED_LAKE) as lake:
        for index, name in enumerate(names):
            picture = lake.copy()
            picture.putpixel((index, 0), (index, 0, 0, 255))
            picture.save(folder / f"{name}.png")


def history_ids(server: ComfyServer) -> set[str]:
    return set(server.get_json("/history"))


def frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def assert_complete(out, names: list[str], frames: int) -> None:
    """One video of ``frames`` frames and one flow preview per picture; nothing else, no partial file."""
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        files = [p for p in (out / name).rglob("*") if p.is_file()]
        (video,) = [p for p in files if p.suffix == ".mp4"]
        (preview,) = [p for p in files if "previews" in p.parts]
        assert len(files) == 2 and frame_count(video) == frames
    assert [p for p in out.rglob("*") if "partial" in p.name] == []


def queue_batch(workflow, pictures, out, *servers, frames: int = 4) -> list[str]:
    arguments = ["queue", workflow, "--batch", f"1.image={pictures}", "--out", str(out), "--quiet",
                 "--set", f"3.frames={frames}"]
    for server in servers:
        arguments += ["--server", server.url]
    return arguments


def test_a_folder_runs_on_two_servers_and_a_second_run_skips_it(comfy_server, second_server, tmp_path, capsys):
    workflow = write_workflow(tmp_path)
    names = ["a", "b", "c", "d"]
    lake_pictures(tmp_path / "pictures", names)
    (tmp_path / "pictures" / "notes.txt").write_text("not a picture: a folder's other files are left alone")
    out = tmp_path / "out"
    before = [history_ids(comfy_server), history_ids(second_server)]

    code = main(queue_batch(workflow, tmp_path / "pictures", out, comfy_server, second_server))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert_complete(out, names, frames=4)
    ran = [len(history_ids(s) - seen) for s, seen in zip((comfy_server, second_server), before)]
    assert sum(ran) == 4 and min(ran) >= 1  # both servers took jobs
    assert all(f"[{name}] queued prompt" in captured.err for name in names)
    assert "batch: 4 done, 0 skipped (complete already), 0 failed, 0 not finished, of 4 pictures" in captured.err
    assert sorted(captured.out.split()) == sorted(str(p) for p in out.rglob("*") if p.is_file())

    again = main(queue_batch(workflow, tmp_path / "pictures", out, comfy_server, second_server))
    captured = capsys.readouterr()
    assert again == 0, captured.err
    assert "batch: 0 done, 4 skipped (complete already)" in captured.err
    assert all(f"[{name}] skipped: its outputs are complete" in captured.err for name in names)
    assert [len(history_ids(s) - seen) for s, seen in zip((comfy_server, second_server), before)] == ran
    assert_complete(out, names, frames=4)


def test_a_failed_picture_is_listed_with_comfyuis_message_and_exits_1(second_server, tmp_path, capsys):
    workflow = write_workflow(tmp_path)
    lake_pictures(tmp_path / "pictures", ["good"])
    with Image.open(MASKED_LAKE) as lake:  # no alpha channel: LoadImage's mask is empty
        lake.convert("RGB").save(tmp_path / "pictures" / "opaque.png")
    out = tmp_path / "out"
    code = main(queue_batch(workflow, tmp_path / "pictures", out, second_server))
    err = capsys.readouterr().err
    assert code == 1
    assert "batch: 1 done, 0 skipped (complete already), 1 failed, 0 not finished, of 2 pictures" in err
    (failed,) = [line for line in err.splitlines() if line.startswith("failed: opaque: ")]
    assert "node 2 (FlowPredictor) failed: InputError" in failed
    assert_complete(out, ["good"], frames=4)  # nothing of the failed job is left


def test_a_server_killed_mid_batch_loses_no_job_and_writes_nothing_twice(
    request, comfy_server, tmp_path, tmp_path_factory, capsys
):
    victim = start_server(request, tmp_path_factory.mktemp("comfy_victim"))
    killed = threading.Event()

    def kill_once_it_runs_a_job():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed.is_set():
            try:
                running = victim.get_json("/queue")["queue_running"]
            except Exception:  # noqa: BLE001 - not up yet, or answering slowly
                running = []
            if running:
                victim.process.kill()  # disappears without a word, as a crashed machine does
                killed.set()
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_once_it_runs_a_job, daemon=True)
    watcher.start()
    try:
        workflow = write_workflow(tmp_path)
        names = ["p1", "p2", "p3", "p4"]
        lake_pictures(tmp_path / "pictures", names)
        out = tmp_path / "out"
        code = main(queue_batch(workflow, tmp_path / "pictures", out, victim, comfy_server, frames=12))
        captured = capsys.readouterr()
    finally:
        killed.set()
        watcher.join(10)
        victim.stop()
    assert code == 0, captured.err
    assert f"server {victim.url} failed (" in captured.err
    (moved,) = [line for line in captured.err.splitlines() if "goes to another server" in line]
    assert moved.startswith("[p1] server") and "it gets no more jobs" in moved  # the victim took the first job
    assert_complete(out, names, frames=12)
    assert "batch: 4 done" in captured.err


def test_ctrl_c_cancels_the_job_running_on_each_server_and_says_so(comfy_server, second_server, tmp_path):
    workflow = write_workflow(tmp_path)
    names = ["q1", "q2", "q3"]
    lake_pictures(tmp_path / "pictures", names)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "text2cinemagraph",
               *queue_batch(workflow, tmp_path / "pictures", out, comfy_server, second_server, frames=240)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not all(s.get_json("/queue")["queue_running"] for s in (comfy_server, second_server)):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    for server in (comfy_server, second_server):
        said = [line for line in err.splitlines() if line.startswith(f"server {server.url}: Ctrl-C while running")]
        assert len(said) == 1 and "cancel sent and acknowledged" in said[0], err
        # The running node stops at its next check for an interruption (seconds on a busy CPU).
        prompt_id = re.search(r"prompt (\S+)", said[0]).group(1)
        deadline = time.monotonic() + 120
        while server.get_json("/queue") != {"queue_running": [], "queue_pending": []}:
            assert time.monotonic() < deadline, "the cancelled prompt never left the queue"
            time.sleep(0.1)
        assert server.get_json(f"/history/{prompt_id}")[prompt_id]["status"]["status_str"] == "error"
    assert "batch: 0 done, 0 skipped (complete already), 0 failed, 3 not finished, of 3 pictures" in err
    assert not out.exists() or list(out.rglob("*")) == []  # no output, no partial file


# --- offline ------------------------------------------------------------------------------


def test_batch_argument_folder_glob_and_clashes(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("b.png", "a.jpg", "readme.txt"):
        (tmp_path / "x" / name).write_bytes(b"")
    target, jobs = parse_batch(f"Load Image.image={tmp_path / 'x'}")
    assert (target.node, target.input) == ("Load Image", "image")
    assert [(job.name, os.path.basename(job.picture)) for job in jobs] == [("a", "a.jpg"), ("b", "b.png")]
    assert [job.name for job in parse_batch(f"1.image={tmp_path / 'x' / '*.png'}")[1]] == ["b"]
    with pytest.raises(ArgumentError, match=r"^--batch: .* names no pictures"):
        parse_batch(f"1.image={tmp_path / 'nothing'}")
    with pytest.raises(ArgumentError, match=r"^--batch: expected NODE.INPUT=VALUE"):
        parse_batch(str(tmp_path))
    (tmp_path / "x" / "a.png").write_bytes(b"")
    with pytest.raises(ArgumentError, match="would share the output folder 'a'"):
        parse_batch(f"1.image={tmp_path / 'x'}")


def test_several_servers_without_batch_is_a_usage_error(tmp_path, capsys):
    workflow = write_workflow(tmp_path)
    code = main(["queue", workflow, "--server", "http://127.0.0.1:9", "--server", "http://127.0.0.1:10"])
    assert code == 2
    assert "error: --server: is given 2 times; several servers run a --batch of pictures" in capsys.readouterr().err

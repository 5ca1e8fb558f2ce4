"""The queue client against a hostile or odd server (tests/stub_comfy.py): what it uploads,
where it writes, and what it says when the prompt is cancelled or vanishes."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import ASSETS
from stub_comfy import PROMPT_ID, StubComfy
from text2cinemagraph.__main__ import main
from text2cinemagraph.nodes.client import queue as client
from text2cinemagraph.nodes.client.errors import ArgumentError, PromptError

PICTURE = os.path.join(ASSETS, "t2c_lake_masked.png")


@pytest.fixture
def stub():
    server = StubComfy()
    yield server
    server.close()


def write_workflow(folder, image_value: str) -> str:
    path = folder / "workflow.json"
    path.write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": image_value}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "SpeedNode", "inputs": {"speed": 0.5}},
    }))
    return str(path)


def run(stub, workflow, *sets, out=None, **kwargs):
    logged = []
    result = client.queue_workflow(
        stub.url, workflow, list(sets), out_dir=out, timeout=20, show_progress=False, log=logged.append, **kwargs
    )
    return result, logged


def output(filename, subfolder="", kind="output"):
    return {"2": {"images": [{"filename": filename, "subfolder": subfolder, "type": kind}]}}


# --- uploads -------------------------------------------------------------------------------


def test_a_private_file_named_inside_the_workflow_is_never_uploaded(stub, tmp_path):
    secret = tmp_path / "id_ed25519"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    stub.succeed_with({})
    _, logged = run(stub, write_workflow(tmp_path, str(secret)))
    assert stub.uploads == []
    assert any("not uploading" in line and str(secret) in line for line in logged)


def test_even_a_picture_named_inside_the_workflow_needs_the_flag(stub, tmp_path):
    shutil.copy(PICTURE, tmp_path / "lake.png")
    workflow = write_workflow(tmp_path, "lake.png")  # relative to the workflow's folder
    stub.succeed_with({})
    run(stub, workflow)
    assert stub.uploads == []
    _, logged = run(stub, workflow, upload_workflow_images=True)
    assert [name for name, _ in stub.uploads] == ["lake.png"]
    assert stub.prompts[-1]["prompt"]["1"]["inputs"]["image"] == "lake.png"
    assert any(line.startswith("will upload") and "lake.png" in line for line in logged)


def test_the_flag_still_refuses_a_file_that_is_not_a_picture(stub, tmp_path):
    token = tmp_path / "token.txt"
    token.write_text("ghp_secret")
    with pytest.raises(ArgumentError, match=r"workflow node 1\.image: .*not a picture Pillow can open"):
        run(stub, write_workflow(tmp_path, str(token)), upload_workflow_images=True)
    assert stub.uploads == [] and stub.prompts == []


def test_a_picture_named_by_set_is_listed_then_uploaded(stub, tmp_path):
    stub.succeed_with({})
    _, logged = run(stub, write_workflow(tmp_path, "lake.png"), f"1.image={PICTURE}")
    assert stub.uploads == [("t2c_lake_masked.png", open(PICTURE, "rb").read())]
    assert logged.index(f"will upload {PICTURE} for node 1 (image)") < logged.index(f"uploaded {PICTURE}")


def test_a_non_picture_named_by_set_is_refused_naming_set(stub, tmp_path):
    key = tmp_path / "key.pem"
    key.write_bytes(b"\x00\x01 not a picture")
    with pytest.raises(ArgumentError, match=r"--set 1\.image: .*key\.pem.*only pictures \(PNG, JPEG"):
        run(stub, write_workflow(tmp_path, "lake.png"), f"1.image={key}")
    assert stub.uploads == [] and stub.prompts == []


# --- downloads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, refusal",
    [
        (output("x.png", kind="../../escape"), "only output, temp outputs"),
        (output("x.png", kind="input"), "type 'input'"),
        (output("x.png", subfolder="../.."), "leads outside"),
        (output("x.png", subfolder="/etc"), "not a plain relative path"),
        (output("../x.png"), "leads outside"),
        (output("/tmp/x.png"), "not a plain relative path"),
        (output("a/x.png"), "not a plain file name"),
        (output("..\\x.png"), "not a plain relative path"),
    ],
)
def test_hostile_output_entries_write_nothing(stub, tmp_path, entry, refusal):
    out = tmp_path / "out"
    stub.succeed_with({**output("good.png"), **{"3": entry["2"]}})
    with pytest.raises(PromptError, match=refusal):
        run(stub, write_workflow(tmp_path, "lake.png"), out=str(out))
    assert stub.views == []  # checked before anything is fetched
    assert not out.exists() or list(out.rglob("*")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.json"]


def test_a_symbolic_link_inside_out_cannot_lead_outside(stub, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "sub")
    stub.succeed_with(output("x.png", subfolder="sub"))
    with pytest.raises(PromptError, match="outside the output folder"):
        run(stub, write_workflow(tmp_path, "lake.png"), out=str(out))
    assert list(elsewhere.iterdir()) == []


def test_outputs_and_previews_land_inside_out(stub, tmp_path):
    out = tmp_path / "out"
    stub.succeed_with({**output("v.mp4", subfolder="t2c/run"), **{"3": output("p.png", kind="temp")["2"]}})
    result, _ = run(stub, write_workflow(tmp_path, "lake.png"), out=str(out))
    assert result.files == [str(out / "t2c" / "run" / "v.mp4"), str(out / "previews" / "p.png")]
    assert (out / "t2c" / "run" / "v.mp4").read_bytes() == b"picture bytes"
    assert [p.name for p in out.rglob("*") if p.name.endswith(".partial")] == []


# --- values, vanished prompts, Ctrl-C ------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]"])
def test_non_finite_numbers_in_set_are_a_usage_error(stub, tmp_path, value, capsys):
    code = main(["queue", write_workflow(tmp_path, "lake.png"), "--server", stub.url, "--set", f"3.speed={value}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--set: 3.speed={value} is not a finite number; give a number such as 0.5" in err
    assert stub.prompts == []


def test_nan_stays_text_for_a_text_or_list_input(stub, tmp_path):
    stub.succeed_with({})
    run(stub, write_workflow(tmp_path, "lake.png"), "1.image=NaN")
    assert stub.prompts[0]["prompt"]["1"]["inputs"]["image"] == "NaN"


def test_a_prompt_deleted_by_another_client_ends_the_wait(stub, tmp_path):
    # queued, then gone from both the queue and the history
    with pytest.raises(PromptError, match="another client deleted it"):
        run(stub, write_workflow(tmp_path, "lake.png"))
    assert len(stub.prompts) == 1


def _interrupt_wait(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "wait_for", interrupted)


def test_ctrl_c_reports_an_interruption_the_server_confirmed(stub, tmp_path, monkeypatch, capsys):
    _interrupt_wait(monkeypatch)
    entry = {"status": {"status_str": "error", "messages": [["execution_interrupted", {}]]}, "outputs": {}}
    stub.history = lambda s: {PROMPT_ID: entry} if s.interrupts else {}
    code = main(["queue", write_workflow(tmp_path, "lake.png"), "--server", stub.url, "--quiet"])
    err = capsys.readouterr().err
    assert code == 130
    assert f"prompt {PROMPT_ID} was interrupted on the server (cancel sent and acknowledged)" in err
    assert stub.deletes == [{"delete": [PROMPT_ID]}] and stub.interrupts == [{"prompt_id": PROMPT_ID}]


def test_ctrl_c_does_not_claim_a_cancellation_that_did_not_happen(stub, tmp_path, monkeypatch, capsys):
    from text2cinemagraph.nodes.client.server import Server

    _interrupt_wait(monkeypatch)
    # The stub's prompt never leaves the queue, so the client waits out its settle time before it
    # says so; 0.4 s instead of the default 3 s tells the same (two polls of the queue, not 15).
    monkeypatch.setattr(Server.cancel, "__defaults__", (0.4,))
    stub.interrupt_status = 500
    stub.queue = lambda s: {"queue_running": [[0, PROMPT_ID, {}, {}, []]], "queue_pending": []}
    code = main(["queue", write_workflow(tmp_path, "lake.png"), "--server", stub.url, "--quiet"])
    err = capsys.readouterr().err
    assert code == 130
    assert "cancel sent but not acknowledged (HTTP 200 / 500)" in err
    assert f"prompt {PROMPT_ID} is still queued or running on the server" in err
    assert "cancelled" not in err


def test_ctrl_c_with_the_server_gone_says_the_prompt_may_still_run(stub, tmp_path, monkeypatch, capsys):
    def interrupted_and_gone(*args, **kwargs):
        stub.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "wait_for", interrupted_and_gone)
    code = main(["queue", write_workflow(tmp_path, "lake.png"), "--server", stub.url, "--quiet"])
    err = capsys.readouterr().err
    assert code == 130
    assert "could not reach the server to cancel" in err and "it may still run there" in err


def test_ctrl_c_while_downloading_discards_the_partial_file(stub, tmp_path, monkeypatch, capsys):
    import requests

    real_iter_content = requests.models.Response.iter_content

    def chunks_then_ctrl_c(self, chunk_size=1, decode_unicode=False):
        if "/view" not in self.url:
            yield from real_iter_content(self, chunk_size, decode_unicode)
            return
        yield b"half a vid"
        raise KeyboardInterrupt

    monkeypatch.setattr(requests.models.Response, "iter_content", chunks_then_ctrl_c)
    stub.succeed_with(output("v.mp4"))
    out = tmp_path / "out"
    code = main(["queue", write_workflow(tmp_path, "lake.png"), "--server", stub.url, "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 130
    assert f"interrupted while downloading; prompt {PROMPT_ID} had finished on the server" in err
    assert [p for p in out.rglob("*") if p.is_file()] == []

"""The pack never answers to the top-level name ``kernels`` (issue 18).

Hugging Face's ``kernels`` package (a transformers 5 requirement) has the name of the pack's
``kernels/`` folder; transformers imports it whenever ``find_spec("kernels")`` finds something.
Every process the pack starts or lives in must find the real package, or nothing: the test run,
the CLI and the queue client run from the checkout as a user runs them, and the ComfyUI servers
of the server and browser tests.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image

from comfy_test_pack.module_probe import module_origin
from conftest import REPO

# Written into a child's sitecustomize: reports at exit where the child finds ``kernels``.
PROBE = """
import atexit, importlib.util, json, os

def _report():
    spec = importlib.util.find_spec("kernels")
    origin = None if spec is None else (spec.origin or list(spec.submodule_search_locations)[0])
    with open(os.environ["T2C_KERNELS_PROBE"], "w") as report:
        json.dump({"origin": origin}, report)

atexit.register(_report)
"""


def assert_not_the_pack(origin: str | None, where: str) -> None:
    """``origin`` (what ``find_spec("kernels")`` found in ``where``) is Hugging Face's package or nothing."""
    if origin is None:
        return
    origin = os.path.realpath(origin)
    pack_folder = os.path.join(REPO, "kernels")
    assert not origin.startswith(pack_folder + os.sep), f"{where}: the pack's folder answers to 'kernels': {origin}"
    try:
        installed = importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:
        raise AssertionError(f"{where}: 'kernels' is not installed, yet {origin} answers to it") from None
    site = os.path.realpath(str(installed.locate_file("kernels")))
    assert origin.startswith(site), f"{where}: 'kernels' found at {origin}, not the installed {site}"


def run_from_the_checkout(tmp_path, *arguments: str) -> tuple[subprocess.CompletedProcess, str | None]:
    """``python -m text2cinemagraph ARGUMENTS`` in the checkout, as a user types it (no safe-path flag).

    Returns the finished process and where it found ``kernels`` when it exited.
    """
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "sitecustomize.py").write_text(textwrap.dedent(PROBE))
    report = tmp_path / "kernels_origin.json"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONSAFEPATH"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(probe_dir), env.get("PYTHONPATH"))))
    env["T2C_KERNELS_PROBE"] = str(report)
    done = subprocess.run([sys.executable, "-m", "text2cinemagraph", *arguments], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert report.is_file(), f"the probe did not report (exit {done.returncode}): {done.stderr[-2000:]}"
    return done, json.loads(report.read_text())["origin"]


def test_the_test_process_finds_the_real_package():
    assert_not_the_pack(module_origin("kernels"), "pytest")
    from transformers.integrations import hub_kernels  # raised ImportError when the pack's folder answered

    assert hub_kernels is not None


def test_the_child_processes_of_the_tests_run_with_the_safe_path_flag():
    code = "import importlib.util, sys; s = importlib.util.find_spec('kernels'); print(s.origin if s else '')"
    printed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert_not_the_pack(printed or None, "a child started with python -c in the checkout")


def test_the_cli_run_from_the_checkout(tmp_path):
    picture, mask = tmp_path / "picture.png", tmp_path / "mask.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(picture)
    Image.fromarray(np.where(np.arange(64)[:, None] < 32, 255, 0).astype(np.uint8).repeat(64, 1)).save(mask)
    out = tmp_path / "loop.gif"
    done, origin = run_from_the_checkout(tmp_path, "animate", str(picture), "--mask", str(mask),
                                         "--frames", "4", "--out", str(out))
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]
    assert_not_the_pack(origin, "the CLI")


def test_the_queue_client_run_from_the_checkout(tmp_path):
    closed = "http://127.0.0.1:9"  # discard port: nothing listens, so the client stops with its error
    workflow = os.path.join(REPO, "workflows", "api", "animate_picture.json")
    done, origin = run_from_the_checkout(tmp_path, "queue", workflow, "--server", closed,
                                         "--out", str(tmp_path / "out"))
    assert done.returncode != 0 and "127.0.0.1:9" in done.stderr, done.stderr[-2000:]
    assert_not_the_pack(origin, "the queue client")


def test_the_comfyui_servers_with_the_pack(frontend_server):
    version, server = frontend_server
    origin = server.get_json("/t2c_test/module_origin", name="kernels")["origin"]
    assert_not_the_pack(origin, f"the ComfyUI server (frontend {version})")

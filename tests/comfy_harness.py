"""Starts a real ComfyUI server with this pack and talks to it over HTTP.

The pack is linked into a fresh ``custom_nodes`` folder under a name other than
``text2cinemagraph`` (so only relative imports can work) and loaded through
``--extra-model-paths-config``; input, output, temp and user folders are
private to the server, and it is stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import requests

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PACK_FOLDER_NAME = "ComfyUI-Text2Cinemagraph"
EXAMPLE_INPUTS = ["t2c_lake_masked.png", "lake.png", "lake_mask.png"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PromptFailed(AssertionError):
    """The server ran a prompt and reported an execution error."""


class ComfyServer:
    def __init__(self, comfy_root: str, base: Path, extra_packs: tuple[Path, ...] = ()):
        self.comfy_root = Path(comfy_root).resolve()
        self.base = Path(base)
        self.extra_packs = extra_packs
        self.custom_nodes = self.base / "custom_nodes"
        self.input_dir = self.base / "input"
        self.output_dir = self.base / "output"
        self.temp_dir = self.base / "temp"
        self.user_dir = self.base / "user"
        self.log_path = self.base / "server.log"
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self.client_id = uuid.uuid4().hex

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> None:
        for folder in (self.custom_nodes, self.input_dir, self.output_dir, self.temp_dir, self.user_dir):
            folder.mkdir(parents=True, exist_ok=True)
        os.symlink(REPO, self.custom_nodes / PACK_FOLDER_NAME)
        for pack in self.extra_packs:
            os.symlink(pack, self.custom_nodes / pack.name)
        for name in EXAMPLE_INPUTS:
            shutil.copy(REPO / "workflows" / "assets" / name, self.input_dir / name)
        config = self.base / "extra_model_paths.yaml"
        config.write_text(f"t2c_tests:\n  custom_nodes: {self.custom_nodes}\n")
        self.port = free_port()
        command = [
            sys.executable, str(self.comfy_root / "main.py"),
            "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-api-nodes", "--disable-auto-launch",
            "--output-directory", str(self.output_dir),
            "--input-directory", str(self.input_dir),
            "--temp-directory", str(self.temp_dir),
            "--user-directory", str(self.user_dir),
            "--database-url", "sqlite:///:memory:",
            "--extra-model-paths-config", str(config),
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=self.base, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/object_info/LoadImage", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()
        self.process = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- HTTP -----------------------------------------------------------------

    def get_json(self, path: str, **params: Any) -> Any:
        response = requests.get(self.url + path, params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=60)

    def queue(self, prompt: dict, workflow: Optional[dict] = None) -> requests.Response:
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        return self.post("/prompt", body)

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        """The history entry of a finished prompt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            if prompt_id in history:  # ComfyUI adds the entry once the prompt has finished
                return history[prompt_id]
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died:\n{self.log_tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        """Queue ``prompt``, wait, and return its history entry; raise on any error."""
        response = self.queue(prompt)
        if response.status_code != 200:
            raise PromptFailed(f"/prompt refused the prompt: {response.text}")
        entry = self.wait(response.json()["prompt_id"], timeout)
        if entry["status"].get("status_str") != "success":
            raise PromptFailed(json.dumps(entry["status"], indent=1)[:4000])
        return entry

    def view(self, file_entry: dict) -> bytes:
        params = {k: file_entry[k] for k in ("filename", "subfolder", "type")}
        response = requests.get(self.url + "/view", params=params, timeout=60)
        response.raise_for_status()
        return response.content

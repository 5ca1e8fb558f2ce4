"""Starts a real ComfyUI server with this pack and talks to it over HTTP.

The pack is linked into a fresh ``custom_nodes`` folder under a name other than
``text2cinemagraph`` (so only relative imports can work) and loaded through
``--extra-model-paths-config``; input, output, temp and user folders are
private to the server, and it is stopped by PID.
"""

from __future__ import annotations

import copy
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
# Test-only node pack (tiny random checkpoint); the session fixture loads it beside the real pack.
TEST_PACK = TESTS / "comfy_test_pack"
TINY_CHECKPOINT = "T2CTestTinyCheckpoint"
EXAMPLE_INPUTS = ["t2c_lake_masked.png", "t2c_painting.png", "lake.png", "lake_mask.png"]
# Empty files standing in for the checkpoints the templates name (properties.models), so that
# the editor lists them like a user's installed files; the tests swap in the tiny checkpoint.
PLACEHOLDER_CHECKPOINTS = ["v1-5-pruned-emaonly.safetensors"]

# The graph editors the browser tests run: the frontend ComfyUI 0.3.75 pins (its default) and the
# newest comfyui-frontend-package, which tests/setup_env.sh installs into .venv/frontends/<version>.
PINNED_FRONTEND = "1.32.9"
NEWEST_FRONTEND = "1.58.1"  # also in tests/setup_env.sh
FRONTENDS: dict[str, Optional[Path]] = {
    PINNED_FRONTEND: None,
    NEWEST_FRONTEND: REPO / ".venv" / "frontends" / NEWEST_FRONTEND / "comfyui_frontend_package" / "static",
}


def fetch_object_info() -> dict:
    """``/object_info`` of a throwaway server with this pack (for the generator scripts)."""
    import tempfile

    comfy = os.environ.get("T2C_COMFYUI", str(REPO / ".venv" / "comfyui"))
    with tempfile.TemporaryDirectory() as base:
        server = ComfyServer(comfy, Path(base))
        server.start()
        try:
            return server.get_json("/object_info")
        finally:
            server.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PromptFailed(AssertionError):
    """The server ran a prompt and reported an execution error."""


def swap_in_tiny_checkpoint(prompt: dict, weights_seed: int = 0) -> dict:
    """A copy of an API prompt with every ``CheckpointLoaderSimple`` replaced by the tiny test checkpoint.

    The tiny node has the same outputs (MODEL, CLIP, VAE), so every link stays valid
    and the rest of the workflow runs as shipped. Needs the server to load ``TEST_PACK``.
    """
    swapped = copy.deepcopy(prompt)
    for node in swapped.values():
        if node.get("class_type") == "CheckpointLoaderSimple":
            node["class_type"] = TINY_CHECKPOINT
            node["inputs"] = {"weights_seed": weights_seed}
    return swapped


def shrink_for_cpu(prompt: dict, frames: int = 8, size: int = 128, steps: int = 5) -> dict:
    """A copy of an API prompt made to run in seconds on a CPU: the checkpoint swapped for
    the tiny random one, pictures ``size`` px, ``steps`` sampler and inversion steps,
    ``frames`` frames a loop, a looser cluster overlap. The graph and other values stay."""
    small = swap_in_tiny_checkpoint(prompt)
    for node in small.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind in ("EmptyLatentImage", "ImageScale"):
            inputs.update(width=size, height=size)
        elif kind in ("AttentionInjectingSampler", "DDIMInvert"):
            inputs["steps"] = steps
        elif kind == "EulerIntegrate":
            inputs["frames"] = frames
        elif kind == "T2CExampleClip":
            inputs.update(width=size, frames=2 * frames)
        elif kind == "AttentionClusterMask":
            inputs["overlap"] = 0.5  # the tiny random model's attention clusters are loose
    return small


def core_txt2img_prompt(seed: int = 0, steps: int = 4, size: int = 64, prefix: str = "t2c_tests/core") -> dict:
    """Core ComfyUI's default graph (checkpoint -> 2x CLIPTextEncode -> KSampler -> VAEDecode -> SaveImage)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lake at dawn, ripples", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
                "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


class ComfyServer:
    def __init__(
        self, comfy_root: str, base: Path, extra_packs: tuple[Path, ...] = (),
        front_end_root: Optional[Path] = None, cache_classic: bool = False, cpu: bool = True,
        model_paths: Optional[dict[str, str]] = None,
    ):
        """``front_end_root``: a frontend's ``static`` folder (None: the one ComfyUI pins).
        ``cache_classic``: keep every node's last output (0.3.75's default; newer ComfyUI evicts
        under RAM pressure), for tests that assert which nodes ran from the cache.
        ``cpu``: False lets ComfyUI use its GPU (tests/gpu_check.py).
        ``model_paths``: extra ComfyUI model folders, ``{folder name: path}``."""
        self.cpu = cpu
        self.comfy_root = Path(comfy_root).resolve()
        self.model_paths = dict(model_paths or {})
        self.base = Path(base)
        self.extra_packs = extra_packs
        self.front_end_root = front_end_root
        self.cache_classic = cache_classic
        self.checkpoints_dir = self.base / "models" / "checkpoints"
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
        for folder in (self.custom_nodes, self.input_dir, self.output_dir, self.temp_dir, self.user_dir,
                       self.checkpoints_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for name in PLACEHOLDER_CHECKPOINTS:
            (self.checkpoints_dir / name).touch()
        os.symlink(REPO, self.custom_nodes / PACK_FOLDER_NAME)
        for pack in self.extra_packs:
            os.symlink(pack, self.custom_nodes / pack.name)
        for name in EXAMPLE_INPUTS:
            shutil.copy(REPO / "workflows" / "assets" / name, self.input_dir / name)
        config = self.base / "extra_model_paths.yaml"
        config.write_text(f"t2c_tests:\n  custom_nodes: {self.custom_nodes}\n  checkpoints: {self.checkpoints_dir}\n"
                          + "".join(f"  {name}: {path}\n" for name, path in self.model_paths.items()))
        self.port = free_port()
        command = [
            sys.executable, str(self.comfy_root / "main.py"),
            *(["--cpu"] if self.cpu else []),
            "--use-pytorch-cross-attention", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-api-nodes", "--disable-auto-launch",
            "--output-directory", str(self.output_dir),
            "--input-directory", str(self.input_dir),
            "--temp-directory", str(self.temp_dir),
            "--user-directory", str(self.user_dir),
            "--database-url", "sqlite:///:memory:",
            "--extra-model-paths-config", str(config),
        ]
        if self.front_end_root is not None:
            command += ["--front-end-root", str(self.front_end_root)]
        if self.cache_classic:
            command.append("--cache-classic")
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        # ComfyUI imports its own modules from main.py's folder, which the safe-path flag would
        # leave off sys.path; that folder is ComfyUI's, not the checkout.
        env.pop("PYTHONSAFEPATH", None)
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

    def queue(self, prompt: dict, workflow: Optional[dict] = None, client_id: Optional[str] = None) -> requests.Response:
        body: dict[str, Any] = {"prompt": prompt, "client_id": client_id or self.client_id}
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

    # --- process and websocket --------------------------------------------------

    def rss_bytes(self) -> int:
        """Resident memory of the server process (``VmRSS`` in ``/proc/PID/status``)."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # reported in kB
        raise RuntimeError("no VmRSS line")

    def websocket(self, client_id: str, timeout: float = 60.0):
        """A websocket-client connection to ``/ws?clientId=...``: messages of prompts queued with that id."""
        import websocket  # websocket-client, in the test extra

        connection = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout
        )
        return connection

    def output_files(self) -> set[str]:
        """Every file and folder under the output folder (relative paths, hidden ones included)."""
        return {str(p.relative_to(self.output_dir)) for p in self.output_dir.rglob("*")}

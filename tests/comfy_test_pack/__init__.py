"""Test-only ComfyUI node pack (never shipped): a tiny random SD1.5-layout checkpoint.

The server tests load it beside the real pack (``ComfyServer(extra_packs=...)``)
so that bundled workflows built around ``CheckpointLoaderSimple`` can run on a
CPU in a fraction of a second: swap the loader for ``T2CTestTinyCheckpoint``
(``comfy_harness.swap_in_tiny_checkpoint``) and leave the rest as shipped.
It also serves ``/t2c_test/module_origin`` (:mod:`.module_probe`).
"""

from .module_probe import register_route
from .tiny_checkpoint import T2CTestFullSizeCheckpoint, T2CTestTinyCheckpoint

register_route()

NODE_CLASS_MAPPINGS = {
    "T2CTestTinyCheckpoint": T2CTestTinyCheckpoint,
    "T2CTestFullSizeCheckpoint": T2CTestFullSizeCheckpoint,  # tests/gpu_check.py
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "T2CTestTinyCheckpoint": "T2C Test Tiny Checkpoint (random weights)",
    "T2CTestFullSizeCheckpoint": "T2C Test Full-size SD1.5 Checkpoint (random weights)",
}

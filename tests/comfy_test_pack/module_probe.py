"""``GET /t2c_test/module_origin?name=NAME``: where the server process finds a top-level module.

``{"origin": path or null}`` from ``importlib.util.find_spec`` inside the running server, so
tests can check which folder answers to a name there (the pack's ``kernels/`` must never).
"""

from __future__ import annotations

import importlib.util


def module_origin(name: str) -> str | None:
    """The file (or first package folder) ``import name`` would load, or None when nothing answers."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    return spec.origin or next(iter(spec.submodule_search_locations or []), None)


def register_route() -> None:
    """Serve :func:`module_origin` when loaded by ComfyUI (the tests import this module too).

    A running ComfyUI imports its ``server`` module before it loads node packs; a test process
    that imports ComfyUI as a library has none, and importing it there would only cost seconds
    (``server`` imports ComfyUI's ``nodes``) to fail on ``utils.install_util``.
    """
    import sys

    server = sys.modules.get("server")
    PromptServer = getattr(server, "PromptServer", None)
    if PromptServer is None or getattr(PromptServer, "instance", None) is None:
        return
    from aiohttp import web

    @PromptServer.instance.routes.get("/t2c_test/module_origin")
    async def _module_origin(request):
        return web.json_response({"origin": module_origin(request.query["name"])})

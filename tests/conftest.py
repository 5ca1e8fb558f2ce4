"""Shared fixtures. Every test runs single-threaded (see DEVELOPERS.md)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

torch.set_num_threads(1)

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.realpath(os.path.dirname(TESTS))
ASSETS = os.path.join(REPO, "workflows", "assets")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


def _import_this_checkout() -> None:
    """Make ``import text2cinemagraph`` (here and in subprocesses) load this checkout.

    The editable install points at whichever checkout ran ``setup_env.sh``; a
    second work tree sharing that venv must still test its own code.
    """
    root = os.path.join(REPO, "build", "import_root")
    link = os.path.join(root, "text2cinemagraph")
    os.makedirs(root, exist_ok=True)
    if os.path.realpath(link) != REPO:
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(REPO, link)
    sys.path.insert(0, root)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)


def _keep_the_checkout_off_sys_path() -> None:
    """The checkout never answers to top-level names, here or in any process the tests start.

    ``python -m pytest`` puts the working directory on ``sys.path``; run from the checkout, its
    ``kernels/`` would then shadow Hugging Face's ``kernels`` package, which transformers imports.
    ``PYTHONSAFEPATH`` keeps child processes (``-m``, ``-c``) from doing the same.
    """
    sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != REPO]
    os.environ["PYTHONSAFEPATH"] = "1"


class _CheckoutIsNoTestPackage:
    """Collects the checkout as a plain folder although it holds ``__init__.py`` (the pack's).

    As a package, pytest would import that ``__init__.py`` before the first test, and where the
    checkout's folder name is no identifier (``text2cinemagraph-comfyui``) it would put the
    checkout itself on ``sys.path`` to do so (``--import-mode=prepend``).
    """

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if os.path.realpath(path) == REPO:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    # A plugin, not a hook of this file: conftest hooks apply only under tests/, not to the checkout.
    config.pluginmanager.register(_CheckoutIsNoTestPackage(), "t2c-checkout-is-no-test-package")


_keep_the_checkout_off_sys_path()
_import_this_checkout()

from comfy_harness import FRONTENDS  # noqa: E402  (tests/ is on sys.path from here)


def _tracked_files() -> dict[str, tuple[int, int]] | None:
    """``path -> (size, mtime_ns)`` of every file git tracks here; None outside a git checkout."""
    import subprocess

    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    stats = {}
    for name in filter(None, listed.decode().split("\0")):
        path = os.path.join(REPO, name)
        if os.path.isfile(path):
            status = os.stat(path)
            stats[name] = (status.st_size, status.st_mtime_ns)
    return stats


def pytest_sessionstart(session):
    session.config._t2c_tracked = _tracked_files()


def pytest_sessionfinish(session, exitstatus):
    """Tests never rewrite files of the repository (thumbnails, workflows: generators do that on request)."""
    before, after = session.config._t2c_tracked, _tracked_files()
    if before is None or after is None:
        return
    changed = sorted(name for name in before.keys() & after.keys() if before[name] != after[name])
    if changed:
        print(f"\nERROR: the test run rewrote tracked files: {', '.join(changed)}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


# Fixtures that start a ComfyUI server, and the one that starts Chromium (browser tests need both).
SERVER_FIXTURES = {"comfy_server", "frontend_server", "paper_server", "second_server"}


def pytest_collection_modifyitems(config, items):
    """Mark ``server`` and ``browser`` tests by the fixtures they use, so the inner loop can skip them:
    ``bash tests/run.sh -m "not server and not browser"``."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SERVER_FIXTURES:
            item.add_marker(pytest.mark.server)
        if "browser" in used:
            item.add_marker(pytest.mark.browser)


def pytest_addoption(parser):
    parser.addoption("--comfyui", default=os.environ.get("T2C_COMFYUI", os.path.join(REPO, ".venv", "comfyui")),
                     help="ComfyUI tree to start for the server tests")


@pytest.fixture(scope="session")
def comfy_server(request, tmp_path_factory):
    """A real ComfyUI server with this pack loaded; see :mod:`comfy_harness`."""
    from comfy_harness import TEST_PACK, ComfyServer

    root = request.config.getoption("--comfyui")
    if not os.path.isfile(os.path.join(root, "main.py")):
        pytest.fail(f"no ComfyUI at {root}; run tests/setup_env.sh or pass --comfyui")
    # TEST_PACK: the test-only tiny checkpoint node (tests/comfy_test_pack), loaded beside the pack.
    # Classic caching: test_comfy_api asserts which nodes ran from the cache.
    server = ComfyServer(root, tmp_path_factory.mktemp("comfy"), extra_packs=(TEST_PACK,), cache_classic=True)
    server.start()
    yield server
    server.stop()


def fail_or_skip(reason: str):
    """Skip a test that cannot run here, but fail it in CI (``CI=true``), where it must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", params=list(FRONTENDS))
def frontend_server(request, tmp_path_factory):
    """``(frontend version, server)``: a ComfyUI server serving each tested graph-editor frontend.

    The pinned frontend is the session's ``comfy_server``; the newest runs in a second server
    (``--front-end-root``). Browser tests take this fixture (or ``editor``) to run once per frontend.
    """
    from comfy_harness import PINNED_FRONTEND, TEST_PACK, ComfyServer

    version = request.param
    if version == PINNED_FRONTEND:
        yield version, request.getfixturevalue("comfy_server")
        return
    static = FRONTENDS[version]
    if not (static / "index.html").is_file():
        fail_or_skip(f"frontend {version} is not installed at {static} (tests/setup_env.sh installs it)")
    server = ComfyServer(request.config.getoption("--comfyui"), tmp_path_factory.mktemp(f"comfy-fe-{version}"),
                         extra_packs=(TEST_PACK,), front_end_root=static)
    server.start()
    yield version, server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (one for the session: playwright's sync API allows one at a time)."""
    import editor_harness

    missing = editor_harness.browser_missing()
    if missing:
        fail_or_skip(missing)
    with editor_harness.chromium() as chromium:
        yield chromium


@pytest.fixture
def editor(browser, frontend_server):
    """``(frontend version, server, page)``: ComfyUI's graph editor in a fresh page (no dialog outlives
    its test), once per tested frontend. For any browser test."""
    import editor_harness

    version, server = frontend_server
    page = editor_harness.open_editor(browser, server)
    try:
        yield version, server, page
    finally:
        page.close()

"""A folder of pictures through one workflow, on one or several ComfyUI servers.

Each picture is one job: the workflow with ``--batch NODE.INPUT`` set to that picture.
Each server runs one job at a time and takes the next as soon as it is free (ComfyUI
queues stay the scheduler; there is none of our own). A job's outputs are downloaded
into a hidden partial folder that becomes ``--out/<picture name>/`` only once every file
is there, so that folder's existence means "complete": a rerun skips it, and a job that
fails, is cancelled or loses its server leaves nothing behind.
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..stages.files import atomic_write
from .errors import ArgumentError, PromptError, PromptLost, QueueInterrupted
from .queue import (
    Override,
    apply_overrides,
    load_workflow,
    parse_override,
    prepare_prompt,
    run_prompt,
    to_api_prompt,
)
from .server import Server

PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Job:
    """One picture of the batch."""

    name: str  # the picture's file name without its extension: its folder under --out
    picture: str


@dataclass
class BatchReport:
    """What became of each job and what each server did."""

    jobs: list[Job]
    done: dict[str, list[str]] = field(default_factory=dict)  # job name -> its files
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # job name -> ComfyUI's (or the client's) message
    servers: dict[str, str] = field(default_factory=dict)  # URL -> how it failed, or what Ctrl-C did there
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every job succeeded (or was complete already), 1 when one failed, 130 after Ctrl-C."""
        if self.interrupted:
            return 130
        return 1 if self.failed or len(self.done) + len(self.skipped) < len(self.jobs) else 0

    def summary(self) -> list[str]:
        """The closing lines: counts, each failed job with its message, what Ctrl-C did on each server."""
        finished = set(self.done) | set(self.skipped) | set(self.failed)
        not_finished = [job.name for job in self.jobs if job.name not in finished]
        lines = [
            f"batch: {len(self.done)} done, {len(self.skipped)} skipped (complete already), "
            f"{len(self.failed)} failed, {len(not_finished)} not finished, of {len(self.jobs)} pictures"
        ]
        lines += [f"failed: {name}: {message}" for name, message in self.failed.items()]
        lines += [f"server {url}: {message}" for url, message in self.servers.items()]
        if not_finished:
            lines.append(f"not finished: {', '.join(not_finished)}")
        return lines


# --- the pictures ------------------------------------------------------------------------


def parse_batch(text: str) -> tuple[Override, list[Job]]:
    """``NODE.INPUT=FOLDER_OR_GLOB`` -> the input to set and one job per picture, in name order."""
    target = parse_override(text, "--batch")
    where = os.path.expanduser(target.raw)
    if os.path.isdir(where):
        paths = [os.path.join(where, n) for n in os.listdir(where) if n.lower().endswith(PICTURE_EXTENSIONS)]
    else:
        paths = glob.glob(where)
    paths = sorted(p for p in paths if os.path.isfile(p))
    if not paths:
        raise ArgumentError(
            "--batch", f"{where!r} names no pictures: give a folder (its {', '.join(PICTURE_EXTENSIONS)} files) "
            "or a glob such as 'photos/*.jpg'"
        )
    jobs, seen = [], {}
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in seen:
            raise ArgumentError(
                "--batch", f"{seen[name]!r} and {path!r} would share the output folder {name!r}; rename one"
            )
        seen[name] = path
        jobs.append(Job(name, path))
    return target, jobs


# --- one job -------------------------------------------------------------------------------


@dataclass
class _Settings:
    """What every job of the batch shares; ``stop`` is set on Ctrl-C."""

    workflow: dict
    workflow_path: str
    overrides: list[Override]
    target: Override
    out_dir: str
    timeout: Optional[float]
    upload_workflow_images: bool
    stop: threading.Event


def _job_overrides(settings: _Settings, job: Job) -> list[Override]:
    picture = Override(settings.target.node, settings.target.input, job.picture, job.picture, "--batch")
    return [*settings.overrides, picture]


def _run_job(server: Server, job: Job, settings: _Settings, log: Callable[[str], None]) -> list[str]:
    """Run one picture on one server; its files, in ``--out/<name>/`` (written whole or not at all)."""
    prepared = prepare_prompt(
        server, settings.workflow, settings.workflow_path, _job_overrides(settings, job),
        settings.upload_workflow_images, log,
    )
    folder = os.path.join(settings.out_dir, job.name)
    with atomic_write(folder) as partial:
        result = run_prompt(server, prepared, partial, settings.timeout, False, log, settings.stop)
        os.makedirs(partial, exist_ok=True)  # a job without output files is complete too
    return [os.path.join(folder, os.path.relpath(path, os.path.realpath(partial))) for path in result.files]


def _server_failure(error: Exception) -> bool:
    """Whether an error means the server is gone (its job goes elsewhere), not that the job failed."""
    import requests

    return isinstance(error, (requests.RequestException, PromptLost))


# --- the servers ---------------------------------------------------------------------------


class _Dispatcher:
    """The jobs still to run, handed to whichever server asks first; a failed server's job goes back."""

    def __init__(self, jobs: list[Job]):
        self._pending = deque(jobs)
        self._running = 0
        self._changed = threading.Condition()

    def take(self, stop: threading.Event) -> Optional[Job]:
        """The next job; None once there is none left and none running (or on Ctrl-C)."""
        with self._changed:
            while not stop.is_set():
                if self._pending:
                    self._running += 1
                    return self._pending.popleft()
                if self._running == 0:
                    return None
                self._changed.wait(0.5)  # a running job may come back from a server that dies
            return None

    def finish(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def give_back(self, job: Job) -> None:
        """A job whose server failed: first in line for the servers left."""
        with self._changed:
            self._running -= 1
            self._pending.appendleft(job)
            self._changed.notify_all()

    def remaining(self) -> list[Job]:
        """The jobs nobody took: once every server's thread has ended, those no server was left to run."""
        with self._changed:
            return list(self._pending)


def _work(server: Server, dispatcher: _Dispatcher, settings: _Settings, report: BatchReport, say) -> None:
    """One server's loop: take a job, run it, record it; stop when the server fails."""
    while True:
        job = dispatcher.take(settings.stop)
        if job is None:
            return

        def log(text: str, name: str = job.name) -> None:
            say(f"[{name}] {text}")

        try:
            report.done[job.name] = _run_job(server, job, settings, log)
            log(f"done: {len(report.done[job.name])} files in {os.path.join(settings.out_dir, job.name)}")
        except QueueInterrupted as stopped:
            report.servers[server.url] = f"Ctrl-C while running {job.name}: {stopped}"
            dispatcher.finish()
            return
        except Exception as error:  # noqa: BLE001 - sorted below: the server's fault or the job's
            if _server_failure(error):
                why = _failure_message(error)
                report.servers[server.url] = f"failed while running {job.name} ({why})"
                log(f"server {server.url} failed ({why}); it gets no more jobs, and {job.name} goes to another server")
                dispatcher.give_back(job)
                return
            report.failed[job.name] = _failure_message(error)
            log(f"failed: {report.failed[job.name]}")
        dispatcher.finish()


def _failure_message(error: Exception, longest: int = 300) -> str:
    """ComfyUI's message (or the client's own) for a failed job; other errors with their type, cut short
    (a refused connection's text repeats the whole URL several times)."""
    if isinstance(error, (PromptError, ArgumentError, TimeoutError)):
        return str(error)
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= longest else text[: longest - 3] + "..."


def _checked_servers(urls: list[str], settings: _Settings, jobs: list[Job], report: BatchReport, say) -> list[Server]:
    """The servers that answer, the workflow and options checked on the first of them (usage errors first)."""
    import requests

    servers = []
    for url in urls:
        server = Server(url)
        try:
            object_info = server.get_json("/object_info")
        except (requests.RequestException, ValueError) as error:
            report.servers[server.url] = f"does not answer ({_failure_message(error)}); it got no jobs"
            say(f"server {server.url} {report.servers[server.url]}")
            continue
        if not servers:
            prompt = to_api_prompt(settings.workflow, object_info)
            apply_overrides(prompt, _job_overrides(settings, jobs[0]), object_info)
        servers.append(server)
    if not servers:
        raise PromptError(f"no server answers ({', '.join(urls)}); nothing was queued")
    return servers


def run_batch(
    server_urls: list[str],
    workflow_path: str,
    batch: str,
    overrides: list[str] = (),
    out_dir: str = "t2c_outputs",
    timeout: Optional[float] = None,
    show_progress: bool = True,
    upload_workflow_images: bool = False,
) -> BatchReport:
    """Run the workflow once per picture of ``batch`` on the servers; see the module's docstring.

    Raises :class:`ArgumentError` for bad arguments and :class:`PromptError` when no server
    answers, before anything is queued. Ctrl-C cancels every running job (``report.servers`` says
    what became of each).
    """
    target, jobs = parse_batch(batch)
    settings = _Settings(
        load_workflow(workflow_path), workflow_path, [parse_override(text) for text in overrides], target,
        out_dir, timeout, upload_workflow_images, threading.Event(),
    )
    report = BatchReport(jobs)
    progress = _BatchProgress(len(jobs), show_progress)
    try:
        servers = _checked_servers(list(server_urls), settings, jobs, report, progress.say)
        dispatcher = _Dispatcher(_jobs_to_run(jobs, out_dir, report, progress.say))
        progress.update(report)
        say = progress.say_and_update(report)
        workers = [_Worker(server, dispatcher, settings, report, say) for server in servers]
        try:
            for worker in workers:
                worker.start()
            _wait_for_all(workers)
        except KeyboardInterrupt:
            _cancel_everywhere(workers, settings.stop, report, progress.say)
    finally:
        progress.close()
    if not report.interrupted:
        for job in dispatcher.remaining():
            report.failed[job.name] = "every server failed before this job could run"
    return report


def _jobs_to_run(jobs: list[Job], out_dir: str, report: BatchReport, say) -> list[Job]:
    """The jobs whose outputs are not complete yet; the others are reported skipped."""
    todo = []
    for job in jobs:
        folder = os.path.join(out_dir, job.name)
        if os.path.isdir(folder):
            report.skipped.append(job.name)
            say(f"[{job.name}] skipped: its outputs are complete in {folder}")
        else:
            todo.append(job)
    return todo


class _Worker(threading.Thread):
    """The thread of one server (:func:`_work`); ``ended`` is set when it is over, however it ends."""

    def __init__(self, server: Server, *work_args):
        super().__init__(name=f"t2c-batch {server.url}", daemon=True)
        self.server = server
        self._work_args = work_args
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            _work(self.server, *self._work_args)
        finally:
            self.ended.set()


def _cancel_everywhere(workers: list[_Worker], stop: threading.Event, report: BatchReport, say) -> None:
    """Ctrl-C: each server's thread cancels its own prompt and records what happened there."""
    report.interrupted = True
    stop.set()
    say("interrupted: cancelling the jobs queued or running on every server ...")
    try:
        _wait_for_all(workers)
    except KeyboardInterrupt:
        say("a second Ctrl-C stopped the cancelling: jobs may still run on the servers")
    for worker in workers:
        report.servers.setdefault(worker.server.url, "no job was running there")


def _wait_for_all(workers: list[_Worker]) -> None:
    """Wait in short sleeps, so that Ctrl-C reaches this (the main) thread at once.

    Not ``Thread.join``: Ctrl-C landing inside a join can leave CPython believing the
    thread has ended (``is_alive()`` False) while it still runs.
    """
    while not all(worker.ended.is_set() for worker in workers):
        time.sleep(0.1)


class _BatchProgress:
    """One bar over the whole batch on stderr; lines printed above it."""

    def __init__(self, total: int, enabled: bool):
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="pictures", unit="picture", file=sys.stderr, dynamic_ncols=True)

    def say(self, text: str) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)

    def update(self, report: BatchReport) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.n = len(report.done) + len(report.skipped) + len(report.failed)
                self._bar.refresh()

    def say_and_update(self, report: BatchReport) -> Callable[[str], None]:
        def say(text: str) -> None:
            self.say(text)
            self.update(report)

        return say

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

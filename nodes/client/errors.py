"""The queue client's errors; ``python -m text2cinemagraph queue`` turns each into its exit code."""

from __future__ import annotations


class ArgumentError(ValueError):
    """A bad command-line argument or workflow file (exit code 2).

    ``str(error)`` reads ``"<argument>: <what is wrong and what would be valid>"``.
    """

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class PromptError(Exception):
    """The server refused the prompt, failed to run it, or answered something unusable (exit code 1)."""


class PromptLost(PromptError):
    """A queued prompt vanished from the server (deleted by another client, or the server restarted)."""


class QueueInterrupted(KeyboardInterrupt):
    """Ctrl-C while queueing or waiting; the message says what happened to the prompt on the server (exit code 130)."""

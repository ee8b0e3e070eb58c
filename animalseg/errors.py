"""User-facing errors: each carries one or more lines that say what is wrong and how to fix it."""

from __future__ import annotations


class AnimalsegError(Exception):
    """An error the user can fix (bad config, bad data); printed without a traceback."""

    exit_code = 2

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(AnimalsegError):
    """A composed configuration that cannot run."""


class DataError(AnimalsegError):
    """A dataset that is missing, unreadable or inconsistent."""


class TrainingError(AnimalsegError):
    """Training cannot go on (diverged, cannot write checkpoints); finished work is kept."""

    exit_code = 1

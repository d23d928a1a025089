"""How a check reports its outcome: return normally for full marks, or raise one of these."""

from __future__ import annotations

from typing import NoReturn


class JudgeConfigError(Exception):
    """The course itself is wrong (its checks, probes or assignment.toml): the instructor's error, not the student's."""


class CheckFailed(AssertionError):
    """No points. The message says what was expected and what was got."""


class Partial(Exception):
    """Some of the points: `fraction` in [0, 1] of the check's points, with a message saying why."""

    def __init__(self, fraction: float, message: str, measured: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.fraction = min(1.0, max(0.0, float(fraction)))
        self.message = message
        self.measured = dict(measured or {})  # what the judge measured (e.g. accuracy_percent), for leaderboards


class Deferred(Exception):
    """Full points with a note: what this check would measure is wrong only because of a mistake another
    check already charges (one bug is charged once)."""

    def __init__(self, owner: str, message: str) -> None:
        super().__init__(message)
        self.owner, self.message = owner, message


def deferred(owner: str, reason: str) -> Deferred:
    return Deferred(owner, f"not charged here: {reason}; that mistake is charged once, by {owner}")


def defer(owner: str, reason: str) -> NoReturn:
    """Do not charge this check: `reason` is a mistake that check `owner` charges."""
    raise deferred(owner, reason)


def fail(message: str) -> NoReturn:
    raise CheckFailed(message)


def partial(fraction: float, message: str, measured: dict[str, float] | None = None) -> NoReturn:
    """Award `fraction` of the points; 0 is a failure and 1 a pass, with the message kept either way."""
    if fraction >= 1.0:
        raise Partial(1.0, message, measured)
    raise Partial(fraction, message, measured)

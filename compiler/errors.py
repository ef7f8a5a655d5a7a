"""modalc's errors: one base that knows how to show itself and its exit code.

Runs on the client. User errors (bad script, bad reference, bad option) exit
with 2 and carry a location (``file:line``) and a hint; they never show a
modalc traceback.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence

import click


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for the closest option, or ``""``."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def short_path(path: str) -> str:
    """A path relative to the working directory when that is shorter (for messages)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


class ModalcError(Exception):
    """Base of modalc's own errors. ``exit_code`` 1 unless a subclass says otherwise."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "", location: tuple[str, int] | None = None,
                 detail: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location
        self.detail = detail

    def format(self) -> str:
        where = ""
        if self.location and self.location[0] not in ("", "<unknown>"):
            file, line = self.location
            where = f"{short_path(file)}:{line}: " if line else f"{short_path(file)}: "
        text = f"Error: {where}{self.message}"
        if self.detail:
            text += "\n" + self.detail.rstrip("\n")
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def show(self) -> None:
        click.echo(self.format(), err=True)

    def __str__(self) -> str:
        return self.format()


class UserError(ModalcError):
    """The user's script, reference or options are wrong: exit code 2."""

    exit_code = 2


class ErrorList(UserError):
    """Several user errors found in one pass, shown together."""

    def __init__(self, errors: Sequence[UserError]):
        super().__init__(f"{len(errors)} errors")
        self.errors = list(errors)

    def format(self) -> str:
        return "\n".join(e.format() for e in self.errors)


class Collector:
    """Collects user errors so that one build reports all of them."""

    def __init__(self) -> None:
        self.errors: list[UserError] = []

    def add(self, error: UserError) -> None:
        self.errors.append(error)

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ErrorList(self.errors)

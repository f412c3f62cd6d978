"""The wizard's terminal: questions with defaults, hidden key entry, and output that
never shows a key, nor a control character a server sent (`printable`)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from agent.commands.printable import printable


class NoAnswer(Exception):
    """Standard input ended before a question was answered (a script without `--yes`)."""


@dataclass(kw_only=True)
class Console:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    read_line: Callable[[str], str] = input
    read_secret: Callable[[str], str] = getpass.getpass
    secrets: list[str] = field(default_factory=list)
    """Keys typed so far: scrubbed from everything written."""

    def say(self, text: str = "") -> None:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        self.out.write(printable(text, newlines=True) + "\n")
        self.out.flush()

    def ask(self, question: str, default: str = "") -> str:
        shown = printable(f"{question} [{default}]: " if default else f"{question}: ")
        try:
            answer = self.read_line(shown).strip()
        except EOFError:
            raise NoAnswer(question) from None
        return answer or default

    def secret(self, question: str) -> str:
        try:
            answer = self.read_secret(f"{question} (typing is hidden): ").strip()
        except EOFError:
            raise NoAnswer(question) from None
        if answer:
            self.secrets.append(answer)
        return answer

    def confirm(self, question: str, *, default: bool) -> bool:
        hint = "Y/n" if default else "y/N"
        while True:
            answer = self.ask(f"{question} ({hint})").lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            self.say("Please answer y or n.")

    def pick(self, question: str, options: Sequence[str], *, default: int = 0) -> int:
        """The index of one of `options`, listed as 1) 2) 3)."""
        for i, option in enumerate(options, start=1):
            self.say(f"  {i}) {printable(option)}")
        while True:
            answer = self.ask(f"{question} 1-{len(options)}", str(default + 1))
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return int(answer) - 1
            self.say(f"Please type a number from 1 to {len(options)}.")

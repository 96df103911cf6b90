"""What the user sees: a line per step on stderr (a spinner on a terminal), results on stdout."""

import json
import logging
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table


def configure_logging(*, verbose: bool) -> None:
    """Libraries' log records (azure-identity's list of credentials tried, azure-core's retries)
    reach stderr only when verbose; with no handler at all, Python would print their warnings
    through logging.lastResort."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "provision", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.provision = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if verbose:
        root.setLevel(logging.INFO)


def show_chain(error: BaseException) -> None:
    """Every exception behind an error, oldest first, with tracebacks (also those raised `from None`)."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    for link in reversed(chain):
        traceback.print_exception(link, chain=False, file=sys.stderr)


class Step:
    """A running step; `update` changes what the spinner says (e.g. "attempt 3")."""

    def __init__(self, label: str, status: Any = None):
        self.label = label
        self._status = status

    def update(self, detail: str) -> None:
        if self._status is not None:
            self._status.update(f"{escape(self.label)} [dim]{escape(detail)}[/]")


class Output:
    def __init__(self, *, quiet: bool = False, err: TextIO | None = None, out: TextIO | None = None):
        self.quiet = quiet
        # emoji=False: rich would print a fingerprint's ":CD:" as a CD emoji, and ":ab:" as another.
        self.err = Console(file=err or sys.stderr, highlight=False, soft_wrap=True, emoji=False)
        self.out = Console(file=out or sys.stdout, highlight=False, soft_wrap=True, emoji=False)

    @contextmanager
    def step(self, label: str) -> Iterator[Step]:
        """Report a step: a check mark and its duration when it ends, a cross if it fails."""
        started = time.monotonic()
        try:
            if self.quiet or not self.err.is_terminal:
                yield Step(label)
            else:
                with self.err.status(escape(label)) as status:
                    yield Step(label, status)
        except BaseException:
            self._done("[red]✗[/]", label, started)
            raise
        self._done("[green]✓[/]", label, started)

    def _done(self, mark: str, label: str, started: float) -> None:
        if not self.quiet:
            seconds = time.monotonic() - started
            self.err.print(f"{mark} {escape(label)} [dim]({seconds:.1f} s)[/]")

    def note(self, message: str) -> None:
        """A progress detail, hidden by --quiet."""
        if not self.quiet:
            self.err.print(f"  {escape(message)}")

    def warn(self, message: str) -> None:
        """Something the user must know, shown even with --quiet."""
        self.err.print(f"[yellow]warning:[/] {escape(message)}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]error:[/] {escape(message)}")

    def confirm(self, question: str) -> bool:
        """Ask yes or no on the terminal; with no terminal to ask on, the answer is no."""
        if not sys.stdin.isatty():
            self.err.print(f"{escape(question)} [no terminal to answer on: taken as no]")
            return False
        return Confirm.ask(escape(question), console=self.err, default=False)

    def result(self, text: str) -> None:
        """The command's answer, on stdout (never hidden)."""
        self.out.print(escape(text))

    def json(self, data: Any) -> None:
        self.out.file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def table(self, columns: list[str], rows: list[tuple[str, ...]], title: str = "") -> None:
        """A table on stdout; columns without names print without a header."""
        table = Table(title=title or None, show_header=any(columns), title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        self.out.print(table)

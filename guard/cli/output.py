"""`--format` / `--output` for every command that reports, and writing the outputs.

add_output_arguments(parser)          # adds repeatable --format / --output
outputs = output_pairs(args)          # [("text", "-"), ("sarif", "out.sarif"), ...]
emit(report, outputs, console)        # renders each format to its destination
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import UsageError
from qeguard.fsutil import atomic_write
from qeguard.render import FORMATS, STDOUT, format_for_path, render, renderer, write
from qeguard.report import Report


class _OutputAction(argparse.Action):
    """Collects --format/--output in command-line order into `namespace.outputs`.

    Each --output binds to the --format just before it if that format has no output yet;
    otherwise it stands alone and its format comes from the file suffix.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        value = str(values)
        pairs: list[tuple[str, str]] = list(getattr(namespace, "outputs", None) or [])
        open_format: bool = getattr(namespace, "_outputs_open", False)
        if self.dest == "format":
            pairs.append((value, STDOUT))
            open_format = True
        else:
            if value == "":
                parser.error("--output needs a path (use - for stdout)")
            if open_format and pairs:
                pairs[-1] = (pairs[-1][0], value)
            else:
                pairs.append((format_for_path(value), value))
            open_format = False
        namespace.outputs = pairs
        namespace._outputs_open = open_format


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add repeatable `--format FMT` and `--output PATH` to a command's parser.

    Read the result with `output_pairs(args)`.
    """
    parser.set_defaults(outputs=None)
    parser.add_argument(
        "-f",
        "--format",
        dest="format",
        choices=FORMATS,
        action=_OutputAction,
        help="report format (repeatable; default text). Each --output after a --format "
        "receives that format; a --format without --output goes to stdout.",
    )
    parser.add_argument(
        "-o",
        "--output",
        dest="output",
        metavar="PATH",
        action=_OutputAction,
        help="write the preceding --format to PATH (- for stdout); without a --format before "
        "it, the format follows the suffix (.json .sarif .md .xml .html, else text)",
    )


def output_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The (format, destination) pairs the command line asked for; text to stdout by default.

    Raises UsageError when two formats would be interleaved on stdout.
    """
    pairs: list[tuple[str, str]] = list(getattr(args, "outputs", None) or [])
    if not pairs:
        return [("text", STDOUT)]
    to_stdout = [fmt for fmt, dest in pairs if dest == STDOUT]
    if len(to_stdout) > 1:
        raise UsageError(
            f"formats {', '.join(to_stdout)} would all be written to stdout",
            hint="give each format but one an --output PATH, e.g. --format sarif --output "
            "qeguard.sarif",
        )
    return pairs


def emit(report: Report, outputs: Sequence[tuple[str, str]], console: Console) -> None:
    """Render `report` once per (format, destination); `-` is the console's stdout.

    Text to stdout honours the console's colour and quiet settings; files never get colour.
    """
    for fmt, dest in outputs:
        if fmt not in FORMATS:
            renderer(fmt)  # raises the UsageError that names the choices
        if dest == STDOUT:
            if fmt == "text":
                from qeguard.render import text as text_format

                text = text_format.render(report, color=console.color, quiet=console.quiet)
                if text:  # -q on a clean run prints nothing at all
                    console.print(text)
            else:
                console.print(render(report, fmt))
        else:
            path = Path(dest)
            _to_file(path, f"{fmt} report", console, functools.partial(write, report, fmt, path))


def _to_file(path: Path, what: str, console: Console, write_it: Callable[[], None]) -> None:
    try:
        ensure_folder(path, console)
        write_it()
    except OSError as exc:
        raise UsageError(
            f"cannot write the {what}: {exc.strerror or exc}",
            where=str(path),
            hint="choose a writable --output path",
        ) from exc
    console.info(f"wrote {what} to {path}")


def ensure_folder(path: Path, console: Console) -> None:
    """The folder of an --output file exists afterwards; creating it is said out loud (a
    mistyped folder must not go unnoticed). Raises OSError when it cannot be made."""
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(parents=True)
        console.info(f"created the folder {folder} for --output")


def document_outputs(args: argparse.Namespace, formats: Sequence[str]) -> list[tuple[str, str]]:
    """`output_pairs` for a command that writes a document, not a guard report (status,
    watch, trust list): only `formats` are accepted."""
    pairs = output_pairs(args)
    for fmt, _ in pairs:
        if fmt not in formats:
            raise UsageError(
                f"--format {fmt}: this command writes {' or '.join(formats)}",
                hint="the report formats belong to verify, ci, deps and report",
            )
    return pairs


def emit_document(
    outputs: Sequence[tuple[str, str]],
    render_as: Mapping[str, Callable[[], str]],
    console: Console,
) -> None:
    """Write a document in each (format, destination); `render_as[fmt]()` makes its text."""
    for fmt, dest in outputs:
        text = render_as[fmt]()
        if dest == STDOUT:
            if text:
                console.print(text)
            continue
        data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
        path = Path(dest)
        _to_file(path, fmt, console, functools.partial(atomic_write, path, data))

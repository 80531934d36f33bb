"""`--format` / `--output` for every command that reports, and writing the outputs.

add_output_arguments(parser)          # adds repeatable --format / --output, --sarif-category
outputs = output_pairs(args)          # [("text", "-"), ("sarif", "out.sarif"), ...]
options = render_options(args, console)   # RenderOptions from the flags and the console
emit(report, outputs, console, options)   # renders each format to its destination

Only the report goes to stdout; everything meant for a person or the CI log (file
notes, GitHub annotations) goes to stderr, so `--format json` on stdout always parses.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.errors import UsageError
from qeguard.fsutil import atomic_write
from qeguard.render import (
    FORMATS,
    MARKDOWN_LIMIT,
    STDOUT,
    RenderOptions,
    format_for_path,
    render,
    renderer,
    write,
)
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
    parser.add_argument(
        "--sarif-category",
        metavar="NAME",
        type=_category,
        help="SARIF: name this analysis (runAutomationDetails.id) so matrix jobs and "
        "subprojects keep separate results; by default the upload step's category: decides",
    )
    parser.add_argument(
        "--markdown-limit",
        metavar="BYTES",
        type=_limit,
        default=MARKDOWN_LIMIT,
        help=f"Markdown: stay under this size, leaving out the least severe rows and saying "
        f"so (default {MARKDOWN_LIMIT}, GitHub's step summary limit; a PR comment takes 65536 "
        "characters)",
    )


def _category(text: str) -> str:
    value = text.strip().strip("/")
    if not value:
        raise argparse.ArgumentTypeError("needs a name, e.g. qeguard-deps/py3.12")
    return value


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if value < 1024:
        raise argparse.ArgumentTypeError("must be at least 1024 bytes")
    return value


def render_options(args: argparse.Namespace, console: Console) -> RenderOptions:
    """The rendering options the command line and the console ask for. Commands without a
    flag (e.g. `--desc` only on `deps`) get its default."""
    return RenderOptions(
        color=console.color,
        quiet=console.quiet,
        descriptions=bool(getattr(args, "desc", False)),
        aliases=bool(getattr(args, "aliases", False)),
        sarif_category=getattr(args, "sarif_category", None),
        markdown_max_bytes=getattr(args, "markdown_limit", None) or MARKDOWN_LIMIT,
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


def emit(
    report: Report,
    outputs: Sequence[tuple[str, str]],
    console: Console,
    options: RenderOptions | None = None,
) -> None:
    """Render `report` once per (format, destination); `-` is the console's stdout.

    Text to stdout honours the colour and quiet options; files never get colour.
    """
    if options is None:
        options = RenderOptions(color=console.color, quiet=console.quiet)
    to_file = replace(options, color=False, quiet=False)
    for fmt, dest in outputs:
        if fmt not in FORMATS:
            renderer(fmt)  # raises the UsageError that names the choices
        if dest == STDOUT:
            text = render(report, fmt, options if fmt == "text" else to_file)
            if text:  # -q on a clean run prints nothing at all
                console.print(text)
        else:
            path = Path(dest)
            _to_file(
                path,
                f"{fmt} report",
                console,
                functools.partial(write, report, fmt, path, to_file),
            )


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

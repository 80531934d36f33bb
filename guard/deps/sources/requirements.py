"""requirements.txt files: pip's format, with includes, hashes, markers and options.

Parsed by hand rather than with pip's internals so that every dependency keeps the file
and first physical line it came from, and so that a URL or editable line is reported as
unscannable instead of silently dropped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from qeguard.deps.model import Dependency, DepsInputError, TargetEnvironment, exact_version
from qeguard.deps.sources import read_text, relpath

# pip strips a comment only when `#` starts the line or follows white space (URLs keep
# their `#egg=` fragments).
_COMMENT = re.compile(r"(^|\s+)#.*$")
_EGG = re.compile(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# Options that take a value and do not name a requirement.
_VALUE_OPTIONS = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--no-binary",
    "--only-binary",
    "--trusted-host",
    "--use-feature",
    "--progress-bar",
}
_FLAG_OPTIONS = {"--pre", "--no-index", "--require-hashes", "--prefer-binary"}
_PER_REQ_OPTIONS = ("--hash", "--config-settings", "--global-option", "--install-option")


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    out: list[Dependency] = []
    _load(path, root=root, env=env, out=out, seen=set(), group=None)
    return out


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    buf = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not buf:
            start = number
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            lines.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        lines.append((start, buf.strip()))
    return lines


def _load(
    path: Path,
    *,
    root: Path,
    env: TargetEnvironment,
    out: list[Dependency],
    seen: set[Path],
    group: str | None,
) -> None:
    resolved = path.resolve()
    if resolved in seen:
        return  # pip tolerates include cycles; reading a file twice would duplicate findings
    seen.add(resolved)
    source = relpath(path, root)
    for line_no, line in _logical_lines(read_text(path, root)):
        where = f"{source}:{line_no}"
        if line.startswith("-"):
            _option(
                line,
                path=path,
                root=root,
                env=env,
                out=out,
                seen=seen,
                where=where,
                source=source,
                line_no=line_no,
                group=group,
            )
            continue
        dep = parse_line(line, source=source, line_no=line_no, env=env, group=group)
        if dep is not None:
            out.append(dep)


def _split_option(line: str, where: str) -> tuple[str, str]:
    if line.startswith("--") and "=" in line.split()[0]:
        opt, _, value = line.partition("=")
        return opt, value.strip()
    parts = line.split(None, 1)
    opt = parts[0]
    if len(opt) > 2 and opt[1] != "-":  # `-rfile.txt`
        return opt[:2], opt[2:].strip()
    return opt, parts[1].strip() if len(parts) > 1 else ""


def _option(
    line: str,
    *,
    path: Path,
    root: Path,
    env: TargetEnvironment,
    out: list[Dependency],
    seen: set[Path],
    where: str,
    source: str,
    line_no: int,
    group: str | None,
) -> None:
    opt, value = _split_option(line, where)
    if opt in ("-r", "--requirement", "-c", "--constraint"):
        if not value:
            raise DepsInputError(f"{opt} needs a file name", where=where)
        if _URL.match(value):
            out.append(
                Dependency(
                    name=value,
                    source=source,
                    line=line_no,
                    kind="requirements",
                    unscannable="included from a URL",
                    group=group,
                )
            )
            return
        target = path.parent / value  # pip resolves includes relative to the including file
        if not target.is_file():
            raise DepsInputError(
                f"included file {value!r} does not exist",
                where=where,
                hint="paths in -r/-c are relative to the including file",
            )
        sub_group = "constraints" if opt in ("-c", "--constraint") else group
        _load(target, root=root, env=env, out=out, seen=seen, group=sub_group)
    elif opt in ("-e", "--editable"):
        name = _name_from_url(value) or value
        out.append(
            Dependency(
                name=name,
                source=source,
                line=line_no,
                kind="requirements",
                unscannable="editable install",
                group=group,
            )
        )
    elif opt in _VALUE_OPTIONS or opt in _FLAG_OPTIONS:
        return
    else:
        raise DepsInputError(
            f"unknown option {opt!r}",
            where=where,
            hint="pip's requirements format: https://pip.pypa.io/en/stable/"
            "reference/requirements-file-format/",
        )


def _name_from_url(value: str) -> str | None:
    m = _EGG.search(value)
    return m.group(1) if m else None


def parse_line(
    line: str, *, source: str, line_no: int, env: TargetEnvironment, group: str | None = None
) -> Dependency | None:
    """One logical requirement line, or None when its marker excludes the target."""
    where = f"{source}:{line_no}"
    text, hashes = _strip_per_requirement_options(line, where)
    if (
        _URL.match(text)
        or text.startswith((".", "/", "~"))
        or text.endswith((".whl", ".tar.gz", ".zip"))
    ):
        name = _name_from_url(text) or text
        return Dependency(
            name=name,
            source=source,
            line=line_no,
            kind="requirements",
            unscannable="URL or path requirement",
            hashes=hashes,
            group=group,
        )
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise DepsInputError(
            f"invalid requirement {text!r}: {exc}",
            where=where,
            hint="see PEP 508 for the requirement syntax",
        ) from None
    marker = str(req.marker) if req.marker else None
    if not env.evaluate(marker, where=where):
        return None
    extras = tuple(sorted(req.extras))
    if req.url:
        return Dependency(
            name=req.name,
            source=source,
            line=line_no,
            kind="requirements",
            unscannable=f"direct URL ({req.url})",
            hashes=hashes,
            markers=marker,
            extras=extras,
            group=group,
        )
    spec = str(req.specifier)
    return Dependency(
        name=req.name,
        source=source,
        line=line_no,
        version=exact_version(spec),
        specifier=spec,
        hashes=hashes,
        markers=marker,
        extras=extras,
        kind="requirements",
        group=group,
    )


def _strip_per_requirement_options(line: str, where: str) -> tuple[str, tuple[str, ...]]:
    idx = min((i for i in (line.find(f" {o}") for o in _PER_REQ_OPTIONS) if i >= 0), default=-1)
    if idx < 0:
        return line.strip(), ()
    head, tail = line[:idx].strip(), line[idx:]
    try:
        tokens = shlex.split(tail)
    except ValueError as exc:
        raise DepsInputError(f"cannot parse options: {exc}", where=where) from None
    hashes: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        opt, eq, value = tok.partition("=")
        if not eq:
            i += 1
            value = tokens[i] if i < len(tokens) else ""
        if opt == "--hash":
            if ":" not in value:
                raise DepsInputError(
                    f"malformed --hash {value!r}",
                    where=where,
                    hint="use --hash=sha256:<hex digest>",
                )
            hashes.append(value)
        elif opt not in _PER_REQ_OPTIONS:
            raise DepsInputError(f"unknown per-requirement option {opt!r}", where=where)
        i += 1
    return head, tuple(hashes)

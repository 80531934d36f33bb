"""requirements.txt files, read the way pip reads them (pip/_internal/req/req_file.py).

Case by case as pip does it:
- lines are joined first: a line ending in `\\` continues on the next one (the backslash is
  dropped and nothing is inserted, so `bar == 4.5\\` + `.6` is `bar == 4.5.6`), except a
  line that is a comment (`#` first, after optional white space), which never continues;
- then comments are stripped (`#` at the start or after white space, so URL fragments stay),
  so a comment ending in `\\` swallows the next line, as in pip;
- then `${VAR}` is replaced by the variable's value where it is set and not empty;
- a line is split into the requirement and its options at the first word starting with
  `-`; options are parsed by an optparse parser with pip's options (so abbreviations such
  as `--req` and repeated options on one line behave as in pip);
- `-r` nests a requirements file, `-c` a constraints file (both relative to the including
  file); constraints restrict the versions of requirements of the same name and are never
  dependencies themselves;
- a requirement that is a URL (http, https, ftp, file, and every VCS scheme pip knows,
  including ones without `//` such as `bzr+lp:`), a local path (anything with a `/` or
  starting with `.` that names a folder, or an archive file name) or an editable install is
  kept as an unscannable local or remote source, with its name when pip would know it
  (`#egg=`, `name @ URL`, a wheel file name).

Parsed by hand rather than with pip's internals (no public API) so that every dependency
keeps the file and first physical line it came from.
"""

from __future__ import annotations

import optparse
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import VERSION_PATTERN
from qeguard.deps.model import Dependency, DepsInputError, TargetEnvironment, exact_version
from qeguard.deps.sources import read_text, relpath
from qeguard.memory import cycle_collection_paused

# pip's own patterns (req_file.py).
COMMENT_RE = re.compile(r"(^|\s+)#.*$")
ENV_VAR_RE = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")
_EGG = re.compile(r"[#&]egg=([^&]*)")
# pip's VCS schemes (pip._internal.vcs: git, hg, svn, bzr) and its plain URL schemes.
VCS_SCHEMES = frozenset(
    {
        "git+http", "git+https", "git+ssh", "git+git", "git+file",
        "hg+file", "hg+http", "hg+https", "hg+ssh", "hg+static-http",
        "svn+ssh", "svn+http", "svn+https", "svn+svn", "svn+file",
        "bzr+http", "bzr+https", "bzr+ssh", "bzr+sftp", "bzr+ftp", "bzr+lp", "bzr+file",
    }
)  # fmt: skip
URL_SCHEMES = frozenset({"http", "https", "file", "ftp"}) | VCS_SCHEMES
# pip's archive extensions (pip._internal.utils.filetypes).
ARCHIVE_EXTENSIONS = (
    ".zip", ".whl", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma",
    ".tar.gz", ".tgz", ".tar",
)  # fmt: skip
# `name==version` (a valid PEP 440 version) and nothing else, in one match: most lines of
# a compiled file, read without the PEP 508 parser (the result is identical;
# tests/deps/test_requirements.py checks it).
_SIMPLE = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*(?P<version>"
    + VERSION_PATTERN
    + r")$",
    re.VERBOSE | re.IGNORECASE,
)


def load(path: Path, *, root: Path, env: TargetEnvironment) -> list[Dependency]:
    reader = _Reader(root=root, env=env)
    with cycle_collection_paused():
        reader.read(path, constraint=False)
        return reader.result()


class _OptionError(Exception):
    pass


class _Parser(optparse.OptionParser):
    def error(self, msg: str) -> NoReturn:  # as pip does: an error, never sys.exit
        raise _OptionError(msg)


def _parser() -> optparse.OptionParser:
    """pip's requirements-file options (SUPPORTED_OPTIONS and SUPPORTED_OPTIONS_REQ).
    Repeatable options default to None (a list default would be shared between lines)."""
    parser = _Parser(add_help_option=False)
    add = parser.add_option
    add("-i", "--index-url", "--pypi-url", dest="index_url")
    add("--extra-index-url", dest="extra_index_urls", action="append")
    add("--no-index", action="store_true")
    add("-c", "--constraint", dest="constraints", action="append")
    add("-r", "--requirement", dest="requirements", action="append")
    add("-e", "--editable", dest="editables", action="append")
    add("-f", "--find-links", dest="find_links", action="append")
    add("--no-binary", dest="no_binary", action="append")
    add("--only-binary", dest="only_binary", action="append")
    add("--prefer-binary", action="store_true")
    add("--require-hashes", action="store_true")
    add("--pre", action="store_true")
    add("--trusted-host", dest="trusted_hosts", action="append")
    add("--use-feature", dest="features", action="append")
    add("--global-option", dest="global_options", action="append")
    add("-C", "--config-settings", dest="config_settings", action="append")
    add("--hash", dest="hashes", action="append")
    return parser


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line, text) after pip's join_lines, ignore_comments and
    expand_env_variables, in that order."""
    if text.startswith("\ufeff"):
        text = text[1:]
    primary = 0
    parts: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        comment = "#" in line and COMMENT_RE.match(line) is not None
        if not line.endswith("\\") or comment:
            if comment:
                line = " " + line  # so that the comment is matched again below
            if parts:
                parts.append(line)
                yield from _clean(primary, "".join(parts))
                parts = []
            else:
                yield from _clean(number, line)
        else:
            if not parts:
                primary = number
            parts.append(line.strip("\\"))
    if parts:
        yield from _clean(primary, "".join(parts))


def _clean(number: int, line: str) -> Iterator[tuple[int, str]]:
    line = (COMMENT_RE.sub("", line) if "#" in line else line).strip()
    if not line:
        return
    if "${" in line:
        for var, name in ENV_VAR_RE.findall(line):
            value = os.environ.get(name)
            if value:
                line = line.replace(var, value)
    yield number, line


def break_args_options(line: str) -> tuple[str, str]:
    """pip's split of a line into the requirement and its options: at the first
    space-separated word that starts with `-`."""
    if " -" not in line and not line.startswith("-"):
        return line, ""  # no word starts with `-`: the common case, without splitting
    tokens = line.split(" ")
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:i]), " ".join(tokens[i:])
    return line, ""


def is_url(name: str) -> bool:
    """pip's `is_url`: a scheme pip can install from, VCS schemes included."""
    if ":" not in name:
        return False
    return name.split(":", 1)[0].lower() in URL_SCHEMES


def looks_like_path(name: str) -> bool:
    """pip's `_looks_like_path`: a path separator, or a leading dot."""
    return (
        "/" in name
        or os.sep in name
        or (os.altsep is not None and os.altsep in name)
        or (name.startswith("."))
    )


def is_archive_file(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_EXTENSIONS)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Constraint:
    name: str  # canonical
    specifier: str
    version: str | None
    hashes: tuple[str, ...]
    source: str
    line: int


class _Reader:
    def __init__(self, *, root: Path, env: TargetEnvironment):
        self.root = root
        self.env = env
        self.parser = _parser()
        self.no_options = self.parser.get_default_values()  # shared, never written
        self.requirements: list[Dependency] = []
        self.constraints: list[_Constraint] = []
        self.seen: set[tuple[Path, bool]] = set()

    def read(self, path: Path, *, constraint: bool) -> None:
        resolved = path.resolve()
        if (resolved, constraint) in self.seen:
            return  # include cycles are tolerated; reading twice would duplicate findings
        self.seen.add((resolved, constraint))
        source = relpath(path, self.root)
        for line_no, line in logical_lines(read_text(path, self.root)):
            self._line(path, source, line_no, line, constraint)

    def _line(self, path: Path, source: str, line_no: int, line: str, constraint: bool) -> None:
        pin = _pinned(line)  # a whole line `name==version` has no options to break off
        if pin is not None:
            self._add(
                _pinned_dependency(pin, source=source, line_no=line_no, hashes=()), constraint
            )
            return
        args, options = break_args_options(line)
        opts = self._options(options, f"{source}:{line_no}") if options else self.no_options
        if args:
            dep = parse_requirement(
                args.strip(),
                source=source,
                line_no=line_no,
                env=self.env,
                root=self.root,
                base=path.parent,
                hashes=tuple(opts.hashes or ()),
            )
            if dep is not None:
                self._add(dep, constraint)
            return
        where = f"{source}:{line_no}"
        for value in opts.editables or ():
            name = _egg(value) or value
            if constraint:
                raise DepsInputError(
                    f"editable requirement {value!r} in a constraints file",
                    where=where,
                    hint="pip refuses editable requirements as constraints",
                )
            self.requirements.append(
                Dependency(
                    name=name,
                    source=source,
                    line=line_no,
                    kind="requirements",
                    unscannable=f"editable install ({value})",
                )
            )
        for value in opts.requirements or ():
            self._include(path, source, line_no, value, constraint=False)
        for value in opts.constraints or ():
            self._include(path, source, line_no, value, constraint=True)

    def _options(self, options: str, where: str) -> optparse.Values:
        # shlex reads character by character; without quotes or backslashes it splits
        # exactly as str.split does, at a fraction of the cost (hashed pins, 200,000 lines).
        words = shlex.split(options) if any(c in options for c in "'\"\\") else options.split()
        if all(w.startswith("--hash=") for w in words):  # what compiled files hold
            opts = optparse.Values({**vars(self.no_options), "hashes": [w[7:] for w in words]})
            self._check_hashes(opts, where)
            return opts
        try:
            opts, _ = self.parser.parse_args(words)
        except (_OptionError, ValueError) as exc:
            raise DepsInputError(
                f"invalid option: {exc}",
                where=where,
                hint="pip's requirements format: https://pip.pypa.io/en/stable/"
                "reference/requirements-file-format/",
            ) from None
        self._check_hashes(opts, where)
        return opts

    @staticmethod
    def _check_hashes(opts: optparse.Values, where: str) -> None:
        for h in opts.hashes or ():
            if ":" not in h:
                raise DepsInputError(
                    f"malformed --hash {h!r}", where=where, hint="use --hash=sha256:<hex digest>"
                )

    def _include(
        self, path: Path, source: str, line_no: int, value: str, *, constraint: bool
    ) -> None:
        where = f"{source}:{line_no}"
        if is_url(value):
            self.requirements.append(
                Dependency(
                    name=value,
                    source=source,
                    line=line_no,
                    kind="requirements",
                    unscannable="requirements included from a URL",
                )
            )
            return
        target = path.parent / value  # pip: relative to the including file
        if not target.is_file():
            raise DepsInputError(
                f"included file {value!r} does not exist",
                where=where,
                hint="paths in -r/-c are relative to the including file",
            )
        self.read(target, constraint=constraint)

    def _add(self, dep: Dependency, constraint: bool) -> None:
        if not constraint:
            self.requirements.append(dep)
            return
        where = dep.location
        # pip's check_invalid_constraint_type.
        problem = None
        if dep.unscannable and (
            is_url(dep.name) or looks_like_path(dep.name) or is_archive_file(dep.name)
        ):
            problem = "unnamed requirements are not allowed as constraints"
        elif dep.unscannable:
            problem = "links are not allowed as constraints"
        elif dep.extras:
            problem = "constraints cannot have extras"
        if problem:
            raise DepsInputError(f"{problem}: {dep.name}", where=where)
        self.constraints.append(
            _Constraint(
                name=dep.canonical_name,
                specifier=dep.specifier,
                version=dep.version,
                hashes=dep.hashes,
                source=dep.source,
                line=dep.line or 0,
            )
        )

    def result(self) -> list[Dependency]:
        """The requirements, each restricted by the constraints of its name."""
        if not self.constraints:
            return self.requirements
        by_name: dict[str, list[_Constraint]] = {}
        for c in self.constraints:
            by_name.setdefault(c.name, []).append(c)
        return [self._constrain(d, by_name.get(d.canonical_name, [])) for d in self.requirements]

    @staticmethod
    def _constrain(dep: Dependency, constraints: list[_Constraint]) -> Dependency:
        if not constraints or dep.unscannable:
            return dep
        spec = ",".join(s for s in (dep.specifier, *(c.specifier for c in constraints)) if s)
        try:
            combined = str(SpecifierSet(spec))
        except InvalidSpecifier:
            combined = spec
        if dep.version is not None:
            return replace(dep, specifier=combined)
        pin = next((c for c in constraints if c.version is not None), None)
        if pin is None:
            return replace(dep, specifier=combined)
        # The version comes from the constraint: findings and --fix point at its line.
        return replace(
            dep,
            version=pin.version,
            specifier=combined,
            hashes=dep.hashes or pin.hashes,
            source=pin.source,
            line=pin.line,
            group=dep.group,
        )


def _pinned(text: str) -> tuple[str, str] | None:
    """(name, version) of a plain `name==version` (most lines of a compiled file)."""
    simple = _SIMPLE.match(text)
    if simple is None:
        return None
    return simple["name"], simple["version"]


def _pinned_dependency(
    pin: tuple[str, str],
    *,
    source: str,
    line_no: int,
    hashes: tuple[str, ...],
    marker: str | None = None,
    group: str | None = None,
) -> Dependency:
    name, version = pin
    return Dependency(
        name=name,
        source=source,
        line=line_no,
        version=version,
        specifier=f"=={version}",
        hashes=hashes,
        markers=marker,
        kind="requirements",
        group=group,
    )


def _egg(value: str) -> str | None:
    m = _EGG.search(value)
    return m.group(1) or None if m else None


def parse_requirement(
    text: str,
    *,
    source: str,
    line_no: int,
    env: TargetEnvironment,
    root: Path,
    base: Path,
    hashes: tuple[str, ...] = (),
    group: str | None = None,
    fast: bool = True,
) -> Dependency | None:
    """One requirement as pip's `parse_req_from_line` reads it, or None when its marker
    excludes the target. `base` is the including file's folder; pip resolves local paths
    against the current folder, for which the repository root stands in. A plain
    `name==version` skips the PEP 508 parser (`fast=False` forces it: the tests compare
    the two)."""
    where = f"{source}:{line_no}"
    url = is_url(text)
    sep = "; " if url else ";"
    marker: str | None = None
    name_part = text
    if sep in text:
        name_part, marker = (s.strip() for s in text.split(sep, 1))
        marker = marker or None
    name_part = name_part.strip()
    if marker is not None and not env.evaluate(marker, where=where):
        return None
    if fast and not url and (pin := _pinned(name_part)) is not None:
        return _pinned_dependency(
            pin, source=source, line_no=line_no, hashes=hashes, marker=marker, group=group
        )

    def local(name: str, why: str) -> Dependency:
        return Dependency(
            name=name,
            source=source,
            line=line_no,
            kind="requirements",
            unscannable=why,
            hashes=hashes,
            markers=marker,
            group=group,
        )

    if url:
        scheme = name_part.split(":", 1)[0].lower()
        name = _wheel_name(name_part) or _egg(name_part) or name_part
        if scheme in VCS_SCHEMES:
            return local(name, f"VCS source ({name_part})")
        if scheme == "file":
            return local(name, f"local file URL ({name_part})")
        return local(name, f"direct URL ({name_part})")
    path_part = re.sub(r"\[[^\]]*\]$", "", name_part)  # pip's _strip_extras
    if looks_like_path(name_part) and _is_dir(path_part, root, base):
        return local(name_part, f"local folder {path_part!r}")
    if is_archive_file(path_part) and not (
        "@" in name_part and not looks_like_path(name_part.split("@", 1)[0])
    ):
        return local(_wheel_name(path_part) or name_part, f"local archive {path_part!r}")
    try:
        req = Requirement(name_part)
    except InvalidRequirement as exc:
        if looks_like_path(name_part):
            return local(name_part, f"local path {path_part!r} (not found)")
        raise DepsInputError(
            f"invalid requirement {text!r}: {exc}",
            where=where,
            hint="see PEP 508 for the requirement syntax",
        ) from None
    if req.marker is not None:  # only from a `name @ url ; marker` split elsewhere
        marker = str(req.marker)
        if not env.evaluate(marker, where=where):
            return None
    extras = tuple(sorted(req.extras))
    if req.url:
        scheme = req.url.split(":", 1)[0].lower()
        kind = (
            "VCS source"
            if scheme in VCS_SCHEMES
            else "local file URL"
            if scheme == "file"
            else "direct URL"
        )
        return Dependency(
            name=req.name,
            source=source,
            line=line_no,
            kind="requirements",
            unscannable=f"{kind} ({req.url})",
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
        version=exact_version(req.specifier),
        specifier=spec,
        hashes=hashes,
        markers=marker,
        extras=extras,
        kind="requirements",
        group=group,
    )


def _is_dir(path: str, root: Path, base: Path) -> bool:
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return p.is_dir()
    return (root / p).is_dir() or (base / p).is_dir()


def _wheel_name(name: str) -> str | None:
    filename = name.rsplit("/", 1)[-1].split("#", 1)[0]
    if not filename.endswith(".whl"):
        return None
    try:
        return str(parse_wheel_filename(filename)[0])
    except InvalidWheelFilename:
        return None


def parse_line(
    line: str, *, source: str, line_no: int, env: TargetEnvironment, group: str | None = None
) -> Dependency | None:
    """One PEP 508 requirement string outside a requirements file (pyproject.toml's
    lists): no options, paths resolved against the current folder."""
    cwd = Path.cwd()
    return parse_requirement(
        line, source=source, line_no=line_no, env=env, root=cwd, base=cwd, group=group
    )


def canonical(name: str) -> str:
    return canonicalize_name(name)

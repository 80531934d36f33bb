"""The OSV matcher: schema rules on hand-written records, real records from the tiny
fixture (tests/data/deps/osv, copied from the bundled snapshot) and the whole snapshot."""

from __future__ import annotations

import json
import zipfile

import pytest
from helpers import DATA
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from qeguard.deps.database import embedded_path
from qeguard.deps.model import Advisory, Rating, SeveritySource
from qeguard.deps.osv import (
    Match,
    index_extras,
    lowest_clearing,
    merge_aliases,
    parse_record,
    validate_record,
    with_extras,
)
from qeguard.report import Severity

OSV = DATA / "deps" / "osv"


def real(ident: str, **changes) -> dict:
    data = json.loads((OSV / f"{ident}.json").read_text())
    data.update(changes)
    return data


def rec(ranges=None, versions=None, **extra):
    affected = {"package": {"ecosystem": "PyPI", "name": "Some_Pkg"}}
    if ranges is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": r} for r in ranges]
    if versions is not None:
        affected["versions"] = versions
    return parse_record({"id": "GHSA-test", "affected": [affected], **extra})


def test_introduced_fixed_with_pep440_ordering():
    r = rec([[{"introduced": "1.0"}, {"fixed": "1.10.0"}]])
    assert r.affects("some-pkg", "1.9.9")
    assert r.affects("some-pkg", "1.2rc1") and r.affects("some-pkg", "1.0")
    assert not r.affects("some-pkg", "1.10")  # 1.10 == 1.10.0 in PEP 440
    assert not r.affects("some-pkg", "0.9") and not r.affects("some-pkg", "1.10.1")


def test_unsorted_events_and_multiple_intervals():
    r = rec([[{"fixed": "2.5"}, {"introduced": "2.0"}, {"fixed": "1.5"}, {"introduced": "0"}]])
    assert r.affects("some-pkg", "1.0") and r.affects("some-pkg", "2.1")
    assert not r.affects("some-pkg", "1.7") and not r.affects("some-pkg", "2.5")


def test_last_affected_and_limit():
    r = rec([[{"introduced": "0"}, {"last_affected": "3.0"}]])
    assert r.affects("some-pkg", "3.0") and not r.affects("some-pkg", "3.0.1")
    r = rec([[{"introduced": "1.0"}, {"limit": "2.0"}]])
    assert r.affects("some-pkg", "1.5") and not r.affects("some-pkg", "2.0")
    r = rec([[{"introduced": "1.0"}, {"limit": "*"}]])
    assert r.affects("some-pkg", "9.0")


def test_versions_list_and_name_normalization():
    r = rec(versions=["1.0-alpha2", "2.0"])
    assert r.affects("some-pkg", "1.0a2")  # normalized forms match
    assert r.affects("some-pkg", "1.0-alpha2") and not r.affects("some-pkg", "1.1")
    assert r.affected[0].name == canonicalize_name("Some_Pkg") == "some-pkg"


def test_withdrawn_records_never_match():
    r = rec([[{"introduced": "0"}]], withdrawn="2024-01-01T00:00:00Z")
    assert not r.affects("some-pkg", "1.0")


def test_severity_from_cvss_then_database_specific():
    r = rec(
        [[{"introduced": "0"}]],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    )
    assert r.severity is Severity.CRITICAL and r.cvss and r.cvss.startswith("CVSS:3.1")
    assert r.rating.score == 9.8 and r.rating.source is SeveritySource.CVSS_V3
    r = rec([[{"introduced": "0"}]], database_specific={"severity": "MODERATE"})
    assert r.severity is Severity.MEDIUM and r.rating.source is SeveritySource.GHSA
    assert r.rating.score is None and r.cvss is None
    assert rec([[{"introduced": "0"}]]).rating == Rating()  # unknown, source "none"


def test_cvss_v4_is_preferred_over_v3_and_scored():
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    r = rec(
        [[{"introduced": "0"}]],
        severity=[
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"},
            {"type": "CVSS_V4", "score": v4},
        ],
        database_specific={"severity": "LOW"},
    )
    assert r.rating == Rating(
        severity=Severity.CRITICAL, vector=v4, score=9.3, source=SeveritySource.CVSS_V4
    )
    # An invalid vector is no rating: the next source answers.
    r = rec(
        [[{"introduced": "0"}]],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:X"}],
        database_specific={"severity": "HIGH"},
    )
    assert r.rating.source is SeveritySource.GHSA and r.severity is Severity.HIGH


def test_real_record_rating_and_description():
    r = parse_record(real("PYSEC-2023-192"))
    assert r.rating.source is SeveritySource.CVSS_V3 and r.rating.score == 8.1
    assert r.severity is Severity.HIGH
    assert len(r.description) > len(r.summary) or "\n" not in r.description
    data = real("PYSEC-2023-192")
    assert parse_record(with_extras(real("PYSEC-2023-192"), index_extras(data))) == r


def test_same_version_fixed_then_introduced_keeps_the_next_interval():
    """pyspark's PYSEC-2022-236 closes [0, 3.1.1) and opens [3.1.1, 3.1.3) at one version.
    Read by its ranges alone (its `versions` list removed), 3.1.1 and 3.1.2 are affected,
    exactly as the list says (the order OSV's reference implementation uses)."""
    data = real("PYSEC-2022-236")
    listed = set(data["affected"][0]["versions"])
    assert {"3.1.1", "3.1.2"} <= listed
    del data["affected"][0]["versions"]
    by_ranges = parse_record(data)
    for v in ("3.0.0", "3.1.1", "3.1.2", "3.2.1"):
        assert by_ranges.affects("pyspark", v), v
    for v in ("3.1.3", "3.2.2", "3.3.0"):
        assert not by_ranges.affects("pyspark", v), v
    assert {v for v in listed if by_ranges.affects("pyspark", v)} == listed
    # In the record's other order (introduced first), the same version stays closed.
    r = rec([[{"introduced": "0"}, {"introduced": "2.0"}, {"fixed": "2.0"}]])
    assert not r.affects("some-pkg", "2.0") and r.affects("some-pkg", "1.9")


@pytest.mark.parametrize(
    ("ident", "name", "bad"),
    [
        ("PYSEC-2021-371", "binderhub", "0.2.0-n653"),
        ("PYSEC-2019-125", "steam", "2019-09-12"),
    ],
)
def test_invalid_boundary_never_widens_a_range(ident, name, bad):
    """A `fixed` that is not PEP 440 cannot bound anything; dropping it would flag every
    release. With no `versions` list the record cannot be evaluated (UNKNOWN)."""
    data = real(ident)
    assert "versions" not in data["affected"][0]
    r = parse_record(data)
    assert r.match(name, "99.0") is Match.UNKNOWN and not r.affects(name, "99.0")
    assert bad in r.problems(name)[0]
    # With a versions list, the list answers.
    data["affected"][0]["versions"] = ["0.1.0"]
    r = parse_record(data)
    assert r.match(name, "0.1.0") is Match.AFFECTED
    assert r.match(name, "99.0") is Match.UNAFFECTED


def test_validate_record_names_the_problem():
    assert validate_record(real("PYSEC-2019-217")) is None
    assert validate_record([]) == "not a JSON object"
    assert "id" in validate_record({"modified": "2024-01-01"})
    assert "modified" in validate_record({"id": "X"})
    bad = real("PYSEC-2019-217")
    bad["affected"][0]["ranges"][0]["events"] = [{"introduced": 0}]
    assert "events" in validate_record(bad)
    bad = real("PYSEC-2019-217", affected={"not": "a list"})
    assert validate_record(bad) == "`affected` is not a list"


def test_alias_merge_keeps_every_fix_version():
    a = Advisory(
        id="PYSEC-1",
        aliases=frozenset({"CVE-9"}),
        fix_versions=("2.0",),
        rating=Rating(severity=Severity.LOW, source=SeveritySource.GHSA),
    )
    b = Advisory(
        id="GHSA-x",
        aliases=frozenset({"CVE-9"}),
        fix_versions=("1.9.5", "2.0"),
        description="the whole story",
        rating=Rating(severity=Severity.HIGH, source=SeveritySource.GHSA),
    )
    c = Advisory(id="PYSEC-2", fix_versions=("3.0",))
    merged = merge_aliases([b, c, a])
    assert [m.id for m in merged] == ["PYSEC-1", "PYSEC-2"]
    assert merged[0].fix_versions == ("1.9.5", "2.0")
    assert merged[0].aliases == {"CVE-9", "GHSA-x"} and merged[0].severity is Severity.HIGH
    assert merged[0].description == "the whole story"  # the primary has none of its own
    assert merged[0].url == "https://osv.dev/vulnerability/PYSEC-1"


def test_lowest_clearing_checks_every_record():
    r1 = rec([[{"introduced": "0"}, {"fixed": "1.5"}]])
    r2 = rec([[{"introduced": "1.5"}, {"fixed": "1.6"}]])
    assert lowest_clearing("1.0", [r1, r2], "some-pkg") == "1.6"


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=4),
    st.integers(0, 21),
)
def test_event_order_does_not_matter(intervals, probe):
    """Events may come in any order; only events of different kinds at one version (which
    the OSV schema leaves to the implementation) are excluded here and tested above."""
    events = []
    for lo, hi in intervals:
        events += [{"introduced": f"{lo}.0"}, {"fixed": f"{lo + hi + 1}.0"}]
    kinds: dict[str, set[str]] = {}
    for e in events:
        for kind, v in e.items():
            kinds.setdefault(v, set()).add(kind)
    if any(len(k) > 1 for k in kinds.values()):
        return
    forward = rec([events])
    backward = rec([list(reversed(events))])
    assert forward.affects("some-pkg", f"{probe}.0") == backward.affects("some-pkg", f"{probe}.0")


def test_whole_pypa_snapshot():
    """Every listed version is flagged; no record flags its own fixed versions."""
    missed, wrongly_fixed, checked = [], [], 0
    with zipfile.ZipFile(embedded_path()) as zf:
        for name in zf.namelist():
            data = json.loads(zf.read(name))
            record = parse_record(data)
            if data.get("withdrawn"):
                assert not any(
                    record.affects(a.name, v) for a in record.affected for v in a.versions
                )
                continue
            for entry in data["affected"]:
                pkg = canonicalize_name(entry["package"]["name"])
                listed = set(entry.get("versions") or ())
                for v in listed:
                    checked += 1
                    if not record.affects(pkg, v):
                        missed.append((data["id"], v))
                for rng in entry.get("ranges") or ():
                    if rng["type"] != "ECOSYSTEM":
                        continue
                    for event in rng["events"]:
                        fixed = event.get("fixed")
                        if fixed and fixed not in listed and record.affects(pkg, fixed):
                            wrongly_fixed.append((data["id"], fixed))
    assert checked > 50_000
    assert missed == []
    assert wrongly_fixed == []


@given(
    st.from_regex(
        r"0?[0-9]{1,3}(\.0?[0-9]{1,3}){0,3}((a|b|rc|alpha|c)[0-9]{1,2})?(\.post[0-9])?(\.dev[0-9])?",
        fullmatch=True,
    )
)
def test_the_normal_form_shortcut_agrees_with_packaging(raw):
    """The index skips parsing versions already in normal form; it must skip only those."""
    from packaging.version import Version
    from qeguard.deps.osv import _NORMAL, normalized_versions

    if _NORMAL.fullmatch(raw):
        assert str(Version(raw)) == raw
    assert normalized_versions([raw]) == ([] if str(Version(raw)) == raw else [str(Version(raw))])

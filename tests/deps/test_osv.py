"""The OSV matcher: schema rules on hand-written records, and the whole bundled snapshot."""

from __future__ import annotations

import json
import zipfile

from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from qeguard.deps.database import embedded_path
from qeguard.deps.model import Advisory
from qeguard.deps.osv import lowest_clearing, merge_aliases, parse_record
from qeguard.report import Severity


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
    r = rec([[{"introduced": "0"}]], database_specific={"severity": "MODERATE"})
    assert r.severity is Severity.MEDIUM
    assert rec([[{"introduced": "0"}]]).severity is Severity.UNKNOWN


def test_alias_merge_keeps_every_fix_version():
    a = Advisory(
        id="PYSEC-1", aliases=frozenset({"CVE-9"}), fix_versions=("2.0",), severity=Severity.LOW
    )
    b = Advisory(
        id="GHSA-x",
        aliases=frozenset({"CVE-9"}),
        fix_versions=("1.9.5", "2.0"),
        severity=Severity.HIGH,
    )
    c = Advisory(id="PYSEC-2", fix_versions=("3.0",))
    merged = merge_aliases([b, c, a])
    assert [m.id for m in merged] == ["PYSEC-1", "PYSEC-2"]
    assert merged[0].fix_versions == ("1.9.5", "2.0")
    assert merged[0].aliases == {"CVE-9", "GHSA-x"} and merged[0].severity is Severity.HIGH


def test_lowest_clearing_checks_every_record():
    r1 = rec([[{"introduced": "0"}, {"fixed": "1.5"}]])
    r2 = rec([[{"introduced": "1.5"}, {"fixed": "1.6"}]])
    assert lowest_clearing("1.0", [r1, r2], "some-pkg") == "1.6"


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=4),
    st.integers(0, 21),
)
def test_event_order_does_not_matter(intervals, probe):
    events = []
    for lo, hi in intervals:
        events += [{"introduced": f"{lo}.0"}, {"fixed": f"{lo + hi + 1}.0"}]
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

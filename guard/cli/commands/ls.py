"""`qeguard ls`: every protected file, its tier, and its state against the signed manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qeguard.cli.console import Console
from qeguard.cli.output import add_output_arguments, document_outputs, emit_document
from qeguard.errors import ExitCode, UsageError
from qeguard.integrity.gate import open_context, run_verify, work_tree
from qeguard.integrity.layout import find_workspace
from qeguard.integrity.restore import load_signed
from qeguard.integrity.trust import tiers_list
from qeguard.rules import RuleId

FORMATS = ("text", "json")

# The state a file is in, from the finding verify reports about it.
STATES: dict[str, str] = {
    RuleId.INT_MODIFIED: "modified",
    RuleId.INT_MISSING: "missing",
    RuleId.INT_ADDED: "unsigned",
    RuleId.INT_KIND: "kind changed",
    RuleId.INT_EXEC: "mode changed",
    RuleId.INT_SYMLINK: "retargeted",
    RuleId.INT_UNREADABLE: "unreadable",
}
UNVERIFIED = "unverified"  # its tier's manifest is not trusted: nothing vouches for it


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ls", help="list protected files with their tier and state")
    p.add_argument(
        "--tier",
        action="append",
        default=[],
        help="only this tier (repeatable or comma-separated)",
    )
    p.add_argument(
        "--trust-ref", metavar="REF", help="read policy and trust from this commit (default HEAD)"
    )
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    outputs = document_outputs(args, FORMATS)
    root = args.repo.resolve() if args.repo else find_workspace().root
    ctx = open_context(root)
    tree = work_tree(ctx)
    signed = load_signed(ctx, tree, trust_ref=args.trust_ref)
    policy = signed.config.policy
    known = [t.name for t in policy.tiers]
    wanted = [n for t in args.tier for n in tiers_list(t)]
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise UsageError(
            f"unknown tier(s) {', '.join(unknown)}",
            where="--tier",
            hint=f"tiers in the policy: {', '.join(known)}",
        )
    # Listed in a manifest (present or not), or given a tier by the policy now.
    tier_of: dict[str, str] = {}
    for check in signed.checks:
        for e in check.entries or ():
            tier_of.setdefault(e.path, check.tier.name)
    matcher = policy.matcher()
    for path in tree.candidates():
        name = matcher.tier_of(path)
        if name is not None:
            tier_of.setdefault(path, name)
    report = run_verify(root, trust_ref=args.trust_ref, cwd=Path.cwd())
    state: dict[str, str] = {}
    for f in report.active_findings:
        label = STATES.get(f.rule)
        if label is not None and f.location is not None:
            state.setdefault(f.location.path, label)
    rows = [
        {
            "path": path,
            "tier": tier,
            "state": UNVERIFIED if tier in signed.untrusted else state.get(path, "ok"),
        }
        for path, tier in sorted(tier_of.items())
        if not wanted or tier in wanted
    ]

    def text() -> str:
        width = max((len(r["state"]) for r in rows), default=0)
        tier_width = max((len(r["tier"]) for r in rows), default=0)
        return "\n".join(
            f"{r['state']:<{width}}  {r['tier']:<{tier_width}}  {r['path']}" for r in rows
        )

    def as_json() -> str:
        return json.dumps(
            {
                "schema": "qeguard.ls/v1",
                "root": str(root),
                "untrusted_tiers": {
                    t: why for t, why in signed.untrusted.items() if not wanted or t in wanted
                },
                "files": rows,
            },
            indent=2,
            sort_keys=True,
        )

    emit_document(outputs, {"text": text, "json": as_json}, console)
    for tier, why in signed.untrusted.items():
        if not wanted or tier in wanted:
            console.warn(f"tier {tier!r} is {UNVERIFIED}: {why}")
    return ExitCode.OK

"""One module per command. Each exposes `add_parser(subparsers)` and `run(args, console) -> int`.

`guard.cli` imports the modules named in COMMANDS, in this order for `--help`.
"""

COMMANDS = (
    "init",
    "keygen",
    "trust",
    "sign",
    "verify",
    "ci",
    "deps",
    "sbom",
    "db",
    "report",
    "status",
    "ls",
    "watch",
    "restore",
    "install_hooks",
)

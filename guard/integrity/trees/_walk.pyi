"""The optional accelerator of the working-tree scan; see `_walk.c` and `work._walk_pure`."""

def walk(
    root: str | bytes,
    keys: list[bytes],
    actions: bytes,
    owns_root: bool,
    previous: bytes | None,
    /,
) -> tuple[bytes, list[tuple[bool, bytes, bytes, bytes]]]: ...

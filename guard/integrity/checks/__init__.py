"""Pure checks: bytes and parsed objects in, findings out."""

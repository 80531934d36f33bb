"""qeguard: signed file-integrity manifests and dependency scanning for Python repositories."""

__version__ = "0.2.0.dev0"

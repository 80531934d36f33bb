"""qeguard: signed file-integrity manifests and dependency scanning for Python repositories."""

__version__ = "0.1.0"

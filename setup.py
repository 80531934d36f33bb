"""The optional C accelerator of the working-tree scan (Linux, OpenSSL's libcrypto).

Everything else is configured in pyproject.toml. `optional=True`: without a compiler or
OpenSSL's headers the build goes on and qeguard runs its pure-Python scan, which gives
the same answers (tests/integrity/test_trees_work.py holds them to it).
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(
        Extension(
            "qeguard.integrity.trees._walk",
            sources=["guard/integrity/trees/_walk.c"],
            libraries=["crypto"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)

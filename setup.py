"""Build script: ships the S2 JSON schemas of the s2-ws-json submodule as package data.

The schema files are never committed to this repository; at build time they are copied from the
submodule working copy (filled by `make submodule`) into ``s2proxy/_schemas`` of the build tree, so
that an installed s2proxy finds them without flags, wherever it is installed.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_SOURCE = os.path.join(HERE, "s2-ws-json", "s2-json-schema")


def _copy_schemas(target_package_dir):
    if not os.path.isdir(os.path.join(SCHEMA_SOURCE, "messages")):
        raise SystemExit(
            "s2-ws-json/s2-json-schema is empty: run `make submodule` (or "
            "`git submodule update --init`) before building s2proxy"
        )
    dest = os.path.join(target_package_dir, "_schemas")
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    for sub in ("messages", "schemas"):
        shutil.copytree(os.path.join(SCHEMA_SOURCE, sub), os.path.join(dest, sub))


class BuildWithSchemas(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:
            _copy_schemas(os.path.join(self.build_lib, "s2proxy"))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode)


class SdistWithSchemas(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        target = os.path.join(base_dir, "s2-ws-json", "s2-json-schema")
        if os.path.isdir(SCHEMA_SOURCE) and not os.path.isdir(target):
            shutil.copytree(SCHEMA_SOURCE, target)


setup(cmdclass={"build_py": BuildWithSchemas, "sdist": SdistWithSchemas})

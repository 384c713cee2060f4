"""The one build step pyproject.toml cannot declare: a wheel carries the clone's top-level ``assets/`` and ``data/``.

The app's scripts and styles and the embedded datasets live at the top of the repository (the layout the design
fixes), outside the packages. ``build_py`` copies them into the built packages, where ``precompute.locations``
looks for them in an installed package: ``assets/`` -> ``playground/assets/``, ``data/`` -> ``precompute/data/``
(``precompute.locations.BUNDLED``, which cannot be imported here: the build runs before the package's
dependencies exist). An editable install reads the clone's own folders and copies nothing. MANIFEST.in puts both
folders in the sdist, so a wheel built from the sdist carries them too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = {"assets": "playground/assets", "data": "precompute/data"}


class BuildPyWithBundled(build_py):
    """``build_py``, then a copy of each top-level folder of ``BUNDLED`` into its package in the build folder."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for source, target in BUNDLED.items():
            if not (ROOT / source).is_dir():
                raise FileNotFoundError(f"{ROOT / source} is missing: the wheel would lack it")
            destination = Path(self.build_lib) / target
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithBundled})

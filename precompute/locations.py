"""Where the project's files are, in a clone and in an installed package alike.

- :func:`bundled_dir`: the app's scripts and styles (``assets``) and the embedded datasets (``data``). A clone
  keeps them in its top-level folders; a wheel carries copies inside the packages (``setup.py``'s ``build_py``
  copies them in at build time, see :data:`BUNDLED`), since an installed package has no repository around it.
- :func:`default_artifacts_root`: ``$SISP_ARTIFACTS``; else ``./artifacts`` when the code runs from a clone (as
  it always did); else the user's data directory (``platformdirs``), so that an installed ``playground`` started
  from any folder finds the artifacts of its earlier runs.
- :func:`package_version`: the installed distribution's version, for ``--version``.

Nothing here imports TensorFlow, Dash or the pipeline: both command lines read it before parsing their arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

DIST_NAME = "semantic-image-search-playground"
ARTIFACTS_ENV = "SISP_ARTIFACTS"
# The folder the packages sit in: a clone's root, or site-packages when installed.
PACKAGES_PARENT = Path(__file__).resolve().parent.parent
# Top-level folder of a clone -> where a wheel carries its copy, relative to site-packages. setup.py holds the same
# table (it cannot import this package at build time); tests/test_install.py checks a built wheel against it.
BUNDLED = {"assets": "playground/assets", "data": "precompute/data"}


def source_root() -> Path | None:
    """The clone these modules run from (``pyproject.toml`` beside ``precompute/``), or None when they run from an
    installed package (a wheel's files in site-packages)."""
    root = PACKAGES_PARENT
    return root if (root / "pyproject.toml").is_file() and (root / "precompute").is_dir() else None


def bundled_dir(name: str) -> Path:
    """The folder ``name`` (``assets`` or ``data``): the clone's top-level one, or the installed package's copy.

    >>> bundled_dir("assets").name
    'assets'
    """
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled folder {name!r}; choose from {', '.join(BUNDLED)}")
    root = source_root()
    return root / name if root is not None else PACKAGES_PARENT / BUNDLED[name]


def assets_dir() -> Path:
    """The app's JavaScript and CSS (Dash's ``assets_folder``)."""
    return bundled_dir("assets")


def data_dir() -> Path:
    """The embedded datasets (``openclipart-200``, ``fashion-mnist-200``)."""
    return bundled_dir("data")


def user_artifacts_root() -> Path:
    """The artifacts root of an installed package: ``artifacts`` in the user's data directory (platformdirs:
    ``~/.local/share/semantic-image-search-playground/artifacts`` on Linux, honouring ``$XDG_DATA_HOME``)."""
    import platformdirs

    return platformdirs.user_data_path(DIST_NAME, appauthor=False) / "artifacts"


def default_artifacts_root() -> Path:
    """Where artifacts go when no ``--artifacts`` / ``--out`` is given: ``$SISP_ARTIFACTS``, else ``./artifacts``
    in a clone, else :func:`user_artifacts_root`."""
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV])
    return Path("artifacts") if source_root() is not None else user_artifacts_root()


def describe_default_artifacts() -> str:
    """The default as the command lines' ``--help`` states it (the folder it resolves to here, and why)."""
    if os.environ.get(ARTIFACTS_ENV):
        return f"${ARTIFACTS_ENV} = {os.environ[ARTIFACTS_ENV]}"
    if source_root() is not None:
        return "./artifacts (running from a clone; $SISP_ARTIFACTS overrides)"
    return f"{user_artifacts_root()} (the user's data directory; $SISP_ARTIFACTS overrides)"


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), or a note that it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DIST_NAME)
    except PackageNotFoundError:
        return "unknown (not installed: pip install .)"

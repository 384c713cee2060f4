"""The app's views, one module each (as Dash Pages keeps one module per page): its ``TITLE``, a ``layout()`` that
reads no data, the ``render_*`` functions that fill it from a selection, and ``register(app, store)``, which adds
the callbacks that call them.

A view is registered once: its name in ``playground.state.VIEWS`` (the paths the URL accepts, in the order of the
tabs) names its module here, ``playground/views/<name>.py``. Adding a view touches those two files: the ids that
its components alone use are constants of its module (``playground/ids.py`` holds those that other modules or the
browser's scripts use too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from dash import Dash

from playground.state import VIEWS
from playground.store import Store


@dataclass(frozen=True)
class View:
    """A registered view: what the page needs of its module."""

    name: str
    title: str
    layout: Callable[[], Any]
    register: Callable[[Dash, Store], None]


def _load(name: str) -> View:
    module = import_module(f"{__name__}.{name}")
    return View(name=name, title=module.TITLE, layout=module.layout, register=module.register)


VIEW_REGISTRY: dict[str, View] = {name: _load(name) for name in VIEWS}

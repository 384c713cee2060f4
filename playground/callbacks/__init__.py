"""Callbacks, one module per view, each a thin ``register(app, store)`` over pure functions."""

from dash import Dash

from playground.callbacks import compare, controller, embeddings, page, search, upload
from playground.store import Store


def register_callbacks(app: Dash, store: Store) -> None:
    for module in (controller, page, search, upload, embeddings, compare):
        module.register(app, store)

"""Callbacks, one module per view, each a thin ``register(app, store)`` over pure functions."""

from dash import Dash

from playground.callbacks import compare, embeddings, page, search, state, upload
from playground.store import Store


def register_callbacks(app: Dash, store: Store) -> None:
    for module in (state, page, search, upload, embeddings, compare):
        module.register(app, store)

"""The Dash app over precomputed artifacts: search, upload, embeddings and compare views."""


def create_app(artifacts_root="artifacts"):  # noqa: ANN001, ANN201 - re-exported lazily
    """Build the app; see :func:`playground.app.create_app`."""
    from playground.app import create_app as _create_app

    return _create_app(artifacts_root)


__all__ = ["create_app"]

"""One module per view, each with a ``layout()`` that reads no data (callbacks fill it)."""

from playground.views import compare, embeddings, search, upload

VIEW_LAYOUTS = {
    "search": search.layout,
    "upload": upload.layout,
    "embeddings": embeddings.layout,
    "compare": compare.layout,
}
VIEW_TITLES = {"search": "Search", "upload": "Upload your image", "embeddings": "Embeddings", "compare": "Compare"}

"""Upload: search the dataset with your own image, featurised in the browser (private mode) or on the server."""

from dash import dcc, html

from playground import components, ids
from playground.uploads import BROWSER_MAX_BYTES, MAX_UPLOAD_BYTES

PRIVATE_ON_LABEL = "Private mode on: your image's features are computed in this browser"
PRIVATE_OFF_LABEL = "Private mode off: the server computes your image's features"


def _private_panel() -> html.Div:
    """Private mode's switch (a toggle button, on by default), the weight variant to download, and a line saying
    what will happen (callbacks/upload.py fills the variants and the line for each selection)."""
    return html.Div(
        [
            # A toggle button (aria-pressed), as the map's thumbnails: Dash 4's dcc.Checklist nests its input in
            # an option role. On while its clicks are even.
            html.Button(
                PRIVATE_ON_LABEL,
                id=ids.PRIVATE_MODE,
                n_clicks=0,
                className="toggle private-mode",
                title="On: your image never leaves this browser (TensorFlow.js). Off: the server computes its "
                "features.",
                **{"aria-pressed": "true"},
            ),
            html.Div(
                components.control("Model download", components.dropdown(ids.PRIVATE_VARIANT), "private-variant",
                                   ids.PRIVATE_VARIANT),
                id=ids.PRIVATE_VARIANT_CONTROL,
            ),
            html.Div(id=ids.PRIVATE_LINE, className="hint private-line", **{"aria-live": "polite"}),
        ],
        className="private-panel",
    )


def layout() -> html.Div:
    limit_mb = MAX_UPLOAD_BYTES // (1024 * 1024)
    return html.Div(
        [
            html.Div(
                [
                    # assets/playground.js watches the files chosen or dropped here: it reports each one's size
                    # (UPLOAD_CHECK) before dcc.Upload reads it, so a file over the limit gets a message.
                    html.Div(
                        dcc.Upload(
                            id=ids.UPLOAD,
                            children=html.Div(["Drag and drop an image here, or ", html.A("browse", className="link")]),
                            className="upload-zone",
                            multiple=False,
                            max_size=BROWSER_MAX_BYTES,
                        ),
                        className="upload-guard",
                        **{"data-max-bytes": str(MAX_UPLOAD_BYTES), "data-check-id": ids.UPLOAD_CHECK,
                           "data-upload-id": ids.UPLOAD},
                    ),
                    dcc.Store(id=ids.UPLOAD_CHECK),
                    dcc.Store(id=ids.UPLOAD_KEY),
                    dcc.Store(id=ids.UPLOAD_SERVER),
                    dcc.Store(id=ids.PRIVATE_INFO),
                    dcc.Store(id=ids.PRIVATE_QUERY),
                    _private_panel(),
                    html.P(
                        [
                            f"JPEG, PNG, WebP, GIF, BMP or TIFF, up to {limit_mb} MiB. ",
                            html.Strong("Without private mode "),
                            "the server computes the features: your image is processed in its memory and is never "
                            "written to disk or sent anywhere else.",
                        ],
                        className="hint",
                    ),
                    html.Div(
                        [html.Span(className="spinner", **{"aria-hidden": "true"}),
                         "Computing the image's features… The first search with a backbone loads its model "
                         "(a few seconds)."],
                        id=ids.UPLOAD_BUSY,
                        className="upload-busy",
                        role="status",
                    ),
                    html.Div(id=ids.UPLOAD_STATUS, **{"aria-live": "polite"}),
                ],
                className="side-panel",
            ),
            html.Div(
                [
                    html.H3("Most similar images"),
                    html.Div(id=ids.UPLOAD_RESULTS),
                ],
                className="main-panel",
            ),
        ],
        className="two-columns",
    )

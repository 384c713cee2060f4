"""Upload: search the dataset with your own image, featurised on the fly by the selected model."""

from dash import dcc, html

from playground import ids
from playground.uploads import BROWSER_MAX_BYTES, MAX_UPLOAD_BYTES


def layout() -> html.Div:
    limit_mb = MAX_UPLOAD_BYTES // (1024 * 1024)
    return html.Div(
        [
            html.Div(
                [
                    dcc.Upload(
                        id=ids.UPLOAD,
                        children=html.Div(["Drag and drop an image here, or ", html.A("browse", className="link")]),
                        className="upload-zone",
                        multiple=False,
                        max_size=BROWSER_MAX_BYTES,
                    ),
                    html.P(
                        [
                            f"JPEG, PNG, WebP, GIF, BMP or TIFF, up to {limit_mb} MB. ",
                            html.Strong("Your image stays private: "),
                            "it is processed in memory to compute its features and is never written to disk "
                            "or sent anywhere else.",
                        ],
                        className="hint",
                    ),
                    dcc.Loading(html.Div(id=ids.UPLOAD_STATUS), type="dot"),
                ],
                className="side-panel",
            ),
            html.Div(
                [html.H3("Most similar images"), dcc.Loading(html.Div(id=ids.UPLOAD_RESULTS), type="dot")],
                className="main-panel",
            ),
        ],
        className="two-columns",
    )

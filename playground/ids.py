"""Component ids that more than one module uses (the page, the controller, shared components, the browser's scripts,
the benchmarks), in one place so that they cannot drift apart. An id that one view alone uses is a constant of its
module in ``playground/views/``, beside its layout and its callbacks."""

URL = "url"
SELECTION = "selection"  # dcc.Store: the resolved Selection as a dict, written on every change (read as State)
# dcc.Store per view (.format(view name)): the selection, written only while that view is shown, so that a click
# runs the shown view's callbacks and no other's.
VIEW_SELECTION = "selection-{}"
# dcc.Store written in the browser (assets/playground.js, ``clicked``) when an image is picked in the grid, the
# results, the map or the viewer: {"trigger": component id, "value": its n_clicks or clickData, "at": ms}. The
# re-rendered buttons' zero clicks never reach the server.
QUERY_CLICK = "query-click"
NOTICE = "notice"
SHARE_LINK = "share-link"
HINT = "first-visit-hint"
HINT_CLOSE = "first-visit-hint-close"
HINT_SEEN = "first-visit-hint-seen"  # dcc.Store in the browser's local storage: True once dismissed

VIEW_TABS = "view-tabs"  # the nav of view links (keyboard-reachable links, one per view)
VIEW_TAB = "view-tab-{}"  # .format(view name): a dcc.Link
VIEW_DIV = "view-{}"  # .format(view name)

# The full-size image viewer (a modal dialog over any view)
VIEW_IMAGE = "view-image"  # pattern-matching type: {"type": ..., "where": view part, "index": image id}
IMAGE_PICK = "pick-image-in"  # pattern-matching type: {"type": ..., "where": view part, "index": image id}
VIEWER = "image-viewer"
VIEWER_IMAGE = "image-viewer-id"  # dcc.Store: the image id shown, or None when closed
VIEWER_CLICK = "image-viewer-click"  # dcc.Store written in the browser: a ⤢, close or search click (see QUERY_CLICK)
VIEWER_BODY = "image-viewer-body"
VIEWER_CLOSE = "image-viewer-close"
VIEWER_SEARCH = "image-viewer-search"

DATASET = "dataset-select"
MODEL = "model-select"
LAYER = "layer-select"
METRIC = "metric-select"
TOP_K = "top-k"
MODEL_INFO = "model-info"

# Search
GRID = "image-grid"
GRID_PAGE = "grid-page"  # dcc.Store {"dataset": name, "page": n}
GRID_SHOWN = "grid-shown"  # dcc.Store {"dataset", "class", "page", "ids"}: the grid page on screen
PICK = "pick-image"  # pattern-matching type: {"type": PICK, "index": image id}
QUERY_PANEL = "query-panel"
RESULTS = "search-results"
DUPLICATE_PICK = "pick-duplicate"  # pattern-matching type: {"type": ..., "pair": n, "index": image id}

# Upload
UPLOAD = "upload"
UPLOAD_STATUS = "upload-status"
UPLOAD_RESULTS = "upload-results"
UPLOAD_CHECK = "upload-check"  # dcc.Store written by assets/playground.js when a file is chosen: name, size, verdict
UPLOAD_PICK = "pick-upload-result"  # pattern-matching type of an upload result thumbnail
UPLOAD_BUSY = "upload-busy"  # shown while the upload callback runs
# dcc.Store {"key": the upload's key on the server, "name": file name}: the upload's bytes are sent once and kept
# on the server (playground.uploads.keep_upload); later selections send only the key.
UPLOAD_KEY = "upload-key"
# dcc.Store {"contents", "filename", "reason", "at"}: a file for the server to featurise (server mode only). The
# file's contents reach the server through this store alone: a clientside callback (assets/private_upload.js)
# reads dcc.Upload's contents and passes them on only when the server computes the features.
UPLOAD_SERVER = "upload-server"
# Private mode (playground/private.py, assets/private_upload.js): the browser embeds the image with TensorFlow.js.
PRIVATE_MODE = "private-mode"  # dcc.Checklist: ["on"] when private mode is on
PRIVATE_VARIANT = "private-variant"  # dcc.RadioItems: the export's weight variant (float32, float16, ...)
PRIVATE_VARIANT_CONTROL = "private-variant-control"  # its labelled wrapper, hidden while private mode is off
PRIVATE_LINE = "private-line"  # what private mode will do with this selection, or why it cannot
PRIVATE_INFO = "private-info"  # dcc.Store: playground.private.private_info of the selection
# dcc.Store {"features", "dataset", "model", "layer", "metric", "k", "at"}: an image's feature vector computed in
# the browser, for the server to rank (datasets too big to search in the browser).
PRIVATE_QUERY = "private-query"

# Embeddings
UMAP_GRAPH = "umap-graph"

# Result thumbnails (components.results_grid)
RESULT_PICK = "pick-result"  # pattern-matching type of a result thumbnail

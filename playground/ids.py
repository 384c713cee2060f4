"""Component ids, in one place so views and callbacks cannot drift apart."""

URL = "url"
SELECTION = "selection"  # dcc.Store: the resolved Selection as a dict; every view reads this
QUERY_REQUEST = "query-request"  # dcc.Store: an image id picked in the grid, the results or the map
NOTICE = "notice"
SHARE_LINK = "share-link"

VIEW_TABS = "view-tabs"
VIEW_DIV = "view-{}"  # .format(view name)

DATASET = "dataset-select"
MODEL = "model-select"
LAYER = "layer-select"
METRIC = "metric-select"
TOP_K = "top-k"
MODEL_INFO = "model-info"

# Search
GRID = "image-grid"
GRID_PAGE = "grid-page"  # dcc.Store {"dataset": name, "page": n}
GRID_PREV = "grid-prev"
GRID_NEXT = "grid-next"
GRID_PAGE_LABEL = "grid-page-label"
GRID_CLASS = "grid-class-filter"
PICK = "pick-image"  # pattern-matching type: {"type": PICK, "index": image id}
QUERY_PANEL = "query-panel"
RESULTS = "search-results"
DUPLICATES = "duplicates-panel"  # html.Details: the dataset's duplicate pairs
DUPLICATE_PICK = "pick-duplicate"  # pattern-matching type: {"type": ..., "pair": n, "index": image id}

# Upload
UPLOAD = "upload"
UPLOAD_STATUS = "upload-status"
UPLOAD_RESULTS = "upload-results"

# Embeddings
UMAP_GRAPH = "umap-graph"
UMAP_TOOLTIP = "umap-tooltip"
UMAP_INFO = "umap-info"

# Compare
COMPARE_SCORE = "compare-score"
COMPARE_HEADLINE = "compare-headline"
COMPARE_ANSWER = "compare-answer"
COMPARE_FAMILY_GRAPH = "compare-family-graph"
COMPARE_VERDICTS = "compare-verdicts"
COMPARE_LAYERS = "compare-layers-graph"
COMPARE_TABLE = "compare-table"
COMPARE_HEATMAP = "compare-heatmap"
COMPARE_COST = "compare-cost"
COMPARE_COST_GRAPH = "compare-cost-graph"
COMPARE_MESSAGE = "compare-message"
COMPARE_DOWNLOAD_BUTTON = "compare-download-button"
COMPARE_DOWNLOAD = "compare-download"
RESULT_PICK = "pick-result"  # pattern-matching type of a result thumbnail

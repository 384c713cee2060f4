"""File formats read without their frameworks: PyTorch state dicts (``torch_pickle``), TensorFlow.js layers models
(``tfjs``) and the JavaScript object literals some npm packages ship them in (``js_literal``)."""

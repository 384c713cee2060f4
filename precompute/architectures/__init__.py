"""Keras architectures that ``keras.applications`` does not ship (``efficientnet_lite``), with Keras' layer names."""

"""The model: the artifact on disk, the model store, the codecs that turn client data into the
model's input arrays, and the predictor holding the ONNX session. No web framework here."""

"""Import a model trained elsewhere: a scikit-learn skops/joblib/pickle file, an XGBoost or
LightGBM model file, or an ONNX file, into the same artifact `modelship train` writes.

Needs the `train` extra. Only this import process ever loads the original file; the artifact it
writes is ONNX plus a model card, so the server still never runs code from a model file.
"""

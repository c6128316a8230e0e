"""Training: read a CSV, choose and fit a scikit-learn pipeline, export it to ONNX, save it.

Needs the `train` extra (scikit-learn, skl2onnx, pandas); serving does not import this package.
"""

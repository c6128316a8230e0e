"""Build: what makes an artifact (training, importing, the training report) and measures a
model as it will be served. Needs the `train` extra; the server never imports this package."""

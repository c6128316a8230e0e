"""Codecs between what clients send and the model's input arrays, one module per content type.

`base` holds what every codec shares (the feature schema, its value rules, `ModelInput`,
`Warnings`); `records` decodes JSON records, `csv` CSV files, `v2` Open Inference Protocol tensors.
"""

"""Contracts: the data every layer above agrees on (the model card, the footprint type, the
settings, the Open Inference Protocol wire types). Imports only the roots (`modelship.errors`)."""

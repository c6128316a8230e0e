"""The modelship Pulumi program: one shared core (config, labels, container spec, image) and one
module per deployment target. `__main__.py` is the entry point Pulumi runs (`main: infra/`)."""

"""Serving: the data plane every transport calls, the CSV scoring, the Prometheus objects,
production monitoring, and the composition root that builds them from the settings. Nothing here
imports a web framework or a server, so any transport (and the tests) can sit on top."""

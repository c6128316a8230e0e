"""The HTTP transport: the FastAPI application, its routes, middleware and error rendering."""

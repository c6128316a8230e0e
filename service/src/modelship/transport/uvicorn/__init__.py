"""The uvicorn adapter: the only modelship code that imports uvicorn, uvloop or httptools."""

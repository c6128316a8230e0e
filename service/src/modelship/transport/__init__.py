"""Transports: the FastAPI application (`http`) and the uvicorn adapter (`uvicorn`) that runs it
with admission at the connection. Both sit on a built data plane (`modelship.serving`)."""

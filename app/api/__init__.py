"""The HTTP API (FastAPI only): the app factory, dependencies, middleware, one module per resource."""

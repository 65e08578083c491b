"""The REST API of agent-memory (FastAPI): build it with :func:`api.app.create_app`."""

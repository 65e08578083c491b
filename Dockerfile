# The agent-memory REST API. Redis runs elsewhere (see docker-compose.yml): REDIS_HOST or
# REDIS_URL must be set, otherwise `serve` would start an embedded server inside the container.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent_memory ./agent_memory
COPY api ./api
RUN pip install . && useradd --create-home --uid 10001 app

USER app
ENV AGENT_MEMORY_HOST=0.0.0.0 AGENT_MEMORY_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["agent-memory", "serve"]

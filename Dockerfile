# The engine's image, built from uv.lock: every package at its locked version, hash-checked.
#
#   docker build -t puraify/execution-engine:0.1.0 .
#   docker build --build-arg EXTRAS=otel .      # adds OpenTelemetry tracing (the `otel` extra)
#
# Two stages. `build` installs uv (pinned, as scripts/uv does), then `uv sync --locked` makes a
# virtual environment in /opt/engine: the dependencies first (a layer that only changes with
# uv.lock), then the project itself, not editable, bytecode compiled (the root filesystem is
# read-only at run time). The runtime stage copies that one directory: no wheels, no uv, no
# build cache, nothing removed after the fact. Both stages use the same base image, so the
# venv's interpreter path (/usr/local/bin/python3) is the same in both.
#
# Base: the Python minor CI tests (3.11), pinned by version and by the digest of its
# multi-architecture index. Bump both together (and UV_VERSION with scripts/uv).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ARG EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/engine \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
RUN python -m pip install --root-user-action=ignore "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project ${EXTRAS:+--extra "$EXTRAS"}
COPY README.md ./
COPY schemas ./schemas
COPY actions ./actions
COPY consumer ./consumer
RUN uv sync --locked --no-dev --no-editable ${EXTRAS:+--extra "$EXTRAS"} \
    && /opt/engine/bin/execution-engine --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="PURAIFY Execution Engine" \
      org.opencontainers.image.description="Consumes execution requests from Kafka, runs actions, publishes result envelopes." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="PURAIFY" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"
ENV PATH=/opt/engine/bin:$PATH \
    ENGINE_REVISION=${REVISION} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EXECUTION_HTTP_PORT=8080
# A numeric user and group (Kubernetes' runAsNonRoot can verify a number, not a name).
RUN groupadd --system --gid 10001 engine \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/engine --create-home \
        --shell /usr/sbin/nologin engine
COPY --from=build --chown=0:0 /opt/engine /opt/engine
USER 10001:10001
WORKDIR /home/engine
EXPOSE 8080
# /healthz answers while the process and its event loop are alive (the ops server runs on it).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EXECUTION_HTTP_PORT', '8080'), timeout=3)"]
ENTRYPOINT ["execution-engine"]
CMD ["run", "--local-kafka", "never"]

# Multi-stage: build wheels with the full toolchain, install them on a slim image, run as a
# non-root user. `docker build --build-arg EXTRAS=otel .` adds OpenTelemetry tracing.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY actions ./actions
COPY consumer ./consumer
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE}
ARG EXTRAS=""
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 --user-group engine
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels \
        "puraify-execution-engine${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /wheels
USER 10001:10001
WORKDIR /home/engine
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]
ENTRYPOINT ["execution-engine"]
CMD ["run", "--local-kafka", "never"]

# Multi-stage: build a wheel with the full toolchain, run it on a slim image as a non-root user.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY actions ./actions
COPY consumer ./consumer
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 engine
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER engine
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["execution-engine"]
CMD ["run", "--local-kafka", "never"]

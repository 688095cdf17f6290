# The edgefinder image of deploy/compose.yaml: the package built as a wheel (what a user installs),
# run as an unprivileged user. Every process of the stack is this image with another command.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 edgefinder
USER edgefinder
WORKDIR /home/edgefinder
# Celery beat's schedule file and the embedded default's files live here.
ENV EDGEFINDER_DATA_DIR=/home/edgefinder/data \
    PYTHONUNBUFFERED=1
# the API; the stream consumers' and the worker's /metrics
EXPOSE 8000 9101 9102
ENTRYPOINT ["edgefinder"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

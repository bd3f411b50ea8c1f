# Tradecore: one image for every service and the gateway.
#   docker build -t tradecore .
#   docker run --rm -e TRADECORE_NATS_URL=nats://nats:4222 tradecore serve pricing
# Any registered service runs by name (`tradecore serve <name>`); Envoy (the gateway) is in the
# image too (`envoy -c <config>`, the configuration from `tradecore deploy k8s`).

# ---- build: the C++ extension (portable: no -march=native, no CUDA) and every wheel
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md CMakeLists.txt ./
COPY core core
COPY python python
COPY proto proto
COPY services services
COPY gateway gateway
ENV TC_NATIVE=OFF TC_CUDA=OFF
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- run: the wheels only, as an unprivileged user, state under /data
FROM python:3.11-slim-bookworm
RUN useradd --uid 10001 --user-group --home-dir /data --create-home tradecore
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /data
ENV TRADECORE_HOST=0.0.0.0 \
    TRADECORE_METRICS_HOST=0.0.0.0 \
    TRADECORE_DATA_DIR=/data \
    TRADECORE_LOG_FILE=- \
    TRADECORE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["tradecore"]
CMD ["serve", "pricing"]

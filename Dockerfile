# syntax=docker/dockerfile:1
#
# One usage-detector worker. Kafka is a separate service (see docker-compose.yml), so the
# image needs no Java: set KAFKA_BOOTSTRAP_SERVERS, or the worker would try to start the
# project's local broker. Configuration: the USAGE_DETECTOR_* variables of
# streams/settings.py. USAGE_DETECTOR_WEB_HOST is the address the HTTP server binds *and*
# advertises to the other workers, so in a container set it to a name they can resolve
# (the compose service name).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project (all of its dependencies come as wheels: no compiler needed).
# README.md* : the README is optional for the build.
WORKDIR /build
COPY pyproject.toml constraints.txt README.md* ./
COPY localkafka ./localkafka
COPY models ./models
COPY policy ./policy
COPY streams ./streams
COPY tools ./tools
COPY reader ./reader
RUN pip install --constraint constraints.txt . \
 && rm -rf /build

# Unprivileged user owning the state directory (a volume: table state survives restarts).
RUN groupadd --system --gid 10001 detector \
 && useradd --system --uid 10001 --gid detector --no-create-home \
        --home-dir /var/lib/usage-detector --shell /usr/sbin/nologin detector \
 && mkdir -p /var/lib/usage-detector \
 && chown detector:detector /var/lib/usage-detector

ENV USAGE_DETECTOR_STATE_DIR=/var/lib/usage-detector \
    USAGE_DETECTOR_WEB_PORT=6066
WORKDIR /var/lib/usage-detector
VOLUME ["/var/lib/usage-detector"]
EXPOSE 6066

USER 10001:10001

# /healthz answers 200 once the worker has recovered its tables and is not rebalancing.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://%s:%s/healthz' % (os.environ.get('USAGE_DETECTOR_WEB_HOST', '127.0.0.1'), os.environ.get('USAGE_DETECTOR_WEB_PORT', '6066')), timeout=4)"]

CMD ["usage-detector", "worker"]

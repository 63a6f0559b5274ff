# toksta-worker image: one image for every command of the console script
# (run, sim, submit, dlq, demo); `run` is the default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it (k8s/deployment.yaml uses 10001).
RUN groupadd --system --gid 10001 toksta \
    && useradd --system --uid 10001 --gid toksta --create-home --home-dir /home/toksta toksta

WORKDIR /src
# Dependencies are pinned by constraints.txt so the image is reproducible; the package itself
# comes from the build context.
COPY pyproject.toml README.md constraints.txt ./
COPY worker ./worker
RUN pip install --no-cache-dir -c constraints.txt . \
    && rm -rf /src

# The embedded state store (used when STATE_URL is unset, e.g. a single `docker run`) needs a
# writable directory; under Kubernetes the worker uses Redis (STATE_URL) and this stays unused.
ENV STATE_DIR=/home/toksta/state
RUN mkdir -p /home/toksta/state && chown -R toksta:toksta /home/toksta/state

USER 10001:10001
WORKDIR /home/toksta

EXPOSE 9191

# slim has no curl: probe /healthz with the interpreter that is already there. urlopen raises on
# any non-2xx answer or refused connection, which makes the check fail.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('METRICS_PORT', '9191') + '/healthz', timeout=4)"]

ENTRYPOINT ["toksta-worker"]
CMD ["run"]

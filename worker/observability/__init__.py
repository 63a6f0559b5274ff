"""Observability of the worker: Prometheus metrics, health and readiness, Sentry, request context.

- `supervisor`: `toksta-worker run` prepares the multiprocess directory and serves `/metrics`,
  `/healthz`, `/readyz` on METRICS_PORT (`server`), one server per host.
- `process`: each worker process hooks its metrics (`metrics`), starts Sentry (`errors`) and an
  observer thread (`reporter`) that writes its readiness report (`health`) and, in one process
  per host, the gauges of shared state.
- `tagging`: which request a log line or error event is about.
"""

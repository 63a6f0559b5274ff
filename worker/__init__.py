"""toksta-worker: a RabbitMQ worker service for the Toksta Public API."""

__version__ = "0.1.0"

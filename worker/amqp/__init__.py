"""amqp package."""

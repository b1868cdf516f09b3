"""Kafka: the Faust app of the worker, its topics, connection settings and metrics."""

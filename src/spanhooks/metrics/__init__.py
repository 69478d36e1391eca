"""Prometheus metrics: families, label caps, scrape-time collection, GenAI metrics, /metrics."""

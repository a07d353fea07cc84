"""Grafana dashboards built as code (production stack)."""

"""The evaluator HTTP API (FastAPI)."""

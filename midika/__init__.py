"""midika: the shared kernel — settings, domain models, the store interface and its adapters, the CLI."""

__version__ = "0.1.0"

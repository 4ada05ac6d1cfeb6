"""hoga (호가): a self-hosted automated-trading server for Korean stocks."""

__version__ = "0.1.0"

"""dpgraph's version: the one definition (pyproject.toml reads it; package metadata records it)."""

__version__ = "0.1.0"

"""The package's version: the one place it is written (pyproject.toml reads it, `convviz --version` prints it)."""

__version__ = "0.4.0"

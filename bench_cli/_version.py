"""The package version, in a module of its own: anything may import it (env records it)
without importing the package and, through it, the API."""

__version__ = "0.1.0"

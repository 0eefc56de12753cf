"""factory: rebuild Python packages from source in containers and publish them to a private index."""

__version__ = "0.1.0"

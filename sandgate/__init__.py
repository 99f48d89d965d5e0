"""Sandgate: the service that sits between AI agents and the world."""

__version__ = "0.1.0"

"""Civic Trivia Championship game service."""

__version__ = "0.1.0"

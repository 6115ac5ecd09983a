"""Exceptions shared between the service modules and the adapters."""


class DependencyUnavailable(Exception):
    """An outside system failed in a way that may pass: the caller should be asked to retry."""

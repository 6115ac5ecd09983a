"""Helpers shared by every test layer (schema validation, event builders)."""

"""Kiln: the API and everything the API shares with the worker (settings, tables, services)."""

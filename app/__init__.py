"""Kiln's service side: ``core`` (shared rules and storage), ``serving`` (inference), ``api`` (HTTP)."""

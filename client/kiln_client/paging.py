"""Listings page by page, as the API gives them (newest first, ``next_cursor`` to go on)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kiln_client.transport import Transport


def pages(transport: Transport, path: str, params: dict[str, Any], limit: int | None) -> Iterator[dict[str, Any]]:
    """Every item of a listing, following ``next_cursor``."""
    cursor, seen = None, 0
    while True:
        page_size = 100 if limit is None else max(1, min(100, limit - seen))
        page = transport.json("GET", path, params={**params, "limit": page_size, **({"cursor": cursor} if cursor else {})})
        for item in page["items"]:
            yield item
            seen += 1
            if limit is not None and seen >= limit:
                return
        cursor = page.get("next_cursor")
        if not cursor:
            return

"""Resource ids: a short type prefix and 128 random bits, so an id says what it names."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"

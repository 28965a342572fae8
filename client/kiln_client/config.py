"""Where a client talks to, and with which key, resolved the same way by the SDK and the CLI:

1. what the caller passes (``Client(url=, key=)``, ``--url``/``--key``);
2. ``KILN_URL`` / ``KILN_API_KEY``;
3. the file ``kiln login`` writes (``$KILN_CONFIG``, else ``$XDG_CONFIG_HOME/kiln/config.json``);
4. the local embedded server that ``make run`` starts (``KILN_HOST``/``KILN_PORT``, default
   127.0.0.1:8000) and the key it wrote to ``$KILN_DATA_DIR/api-key`` (default ``./var/api-key``).

The local key file is read only when the URL is the local default too: a key is never sent to a
server it was not made for.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    url: str
    key: str | None
    source: str  # where the URL came from, for messages: "argument", "environment", a file, "local server"


def config_path() -> Path:
    if explicit := os.environ.get("KILN_CONFIG"):
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "kiln" / "config.json"


def read_config(path: Path | None = None) -> dict[str, str]:
    path = path or config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the Kiln config {path}: {exc}") from None
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def write_config(url: str, key: str, path: Path | None = None) -> Path:
    """Saves what ``kiln login`` checked, readable by its owner alone (it holds a secret)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "key": key}, f)
    os.chmod(path, 0o600)
    return path


def local_url() -> str:
    host = os.environ.get("KILN_HOST") or "127.0.0.1"
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{os.environ.get('KILN_PORT') or 8000}"


def local_key() -> str | None:
    path = Path(os.environ.get("KILN_DATA_DIR") or "var") / "api-key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def resolve(url: str | None = None, key: str | None = None) -> Target:
    if url:
        return Target(url.rstrip("/"), key or os.environ.get("KILN_API_KEY") or _config_key_for(url), "argument")
    if env_url := os.environ.get("KILN_URL"):
        return Target(env_url.rstrip("/"), key or os.environ.get("KILN_API_KEY") or _config_key_for(env_url), "KILN_URL")
    saved = read_config()
    if saved.get("url"):
        return Target(saved["url"].rstrip("/"), key or os.environ.get("KILN_API_KEY") or saved.get("key"), str(config_path()))
    return Target(local_url(), key or os.environ.get("KILN_API_KEY") or local_key(), "local server")


def _config_key_for(url: str) -> str | None:
    saved = read_config()
    return saved.get("key") if saved.get("url", "").rstrip("/") == url.rstrip("/") else None

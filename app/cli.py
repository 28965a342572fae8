"""``kiln``: run the service and administer it.

    kiln up                      API + one worker on the embedded default (what `make run` calls)
    kiln api [--workers N]       the HTTP API
    kiln worker                  one training worker (Celery, solo pool)
    kiln db upgrade              apply the migrations
    kiln keys create --tenant T  a new API key, printed alone on the last line
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys

from app.core.settings import get_settings


def cmd_db_upgrade(_args) -> int:
    from app.core import bootstrap

    settings = get_settings()
    bootstrap.prepare(settings)  # the schema, and the embedded broker's tables beside it
    print(f"database at head: {_redact(settings.database_url)}")
    return 0


def cmd_keys_create(args) -> int:
    from app.core import tenants
    from app.core.db.engine import session_factory

    settings = get_settings()
    with session_factory(settings.database_url)() as session:
        tenant = tenants.get_or_create_tenant(session=session, name=args.tenant)
        key = tenants.create_key(session=session, tenant=tenant)
        session.commit()
    print(f"new API key for tenant {args.tenant!r} (shown once; only its hash is stored):")
    print(key)
    return 0


def cmd_api(args) -> int:
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "app.api.main:create_app", factory=True, host=args.host or settings.host, port=args.port or settings.port,
        workers=args.workers, log_level="info", access_log=False,
    )
    return 0


def cmd_worker(args) -> int:
    from worker.celery_app import app

    settings = get_settings()
    argv = [
        "worker", "--pool=solo", "--concurrency=1", "-Q", settings.queue_name, "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"kiln-{os.getpid()}@{socket.gethostname()}",
    ]
    app.worker_main(argv)
    return 0


def cmd_up(args) -> int:
    from app.core import bootstrap

    settings = get_settings()
    bootstrap.prepare(settings)
    key = bootstrap.ensure_default_key(settings)
    if key:
        print(f"\nCreated tenant 'default'. Its API key (also in {settings.api_key_file}, mode 600):\n\n    {key}\n", flush=True)
    else:
        print(f"\nAPI key of tenant 'default': see {settings.api_key_file}\n", flush=True)
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], start_new_session=True)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        print(f"Kiln on http://{settings.host}:{settings.port}  (docs: /docs; data: {settings.data_dir})", flush=True)
        args.workers = 1
        cmd_api(args)
    except KeyboardInterrupt:
        pass
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiln", description="Kiln: training as a service")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="API + one worker on the embedded default")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.set_defaults(func=cmd_up)

    api = sub.add_parser("api", help="the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(func=cmd_api)

    sub.add_parser("worker", help="a training worker").set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key for a tenant (created if new)")
    create.add_argument("--tenant", required=True)
    create.set_defaults(func=cmd_keys_create)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

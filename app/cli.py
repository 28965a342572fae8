"""``kiln``: run the service and administer it.

    kiln up                      API + one worker on the embedded default (what `make run` calls)
    kiln api [--workers N]       the HTTP API
    kiln worker                  one training worker (Celery, solo pool)
    kiln db upgrade              apply the migrations
    kiln keys create --tenant T  a new API key, printed alone on the last line (--name, --scopes, --expires-days)
    kiln keys list --tenant T    a tenant's keys, without secrets
    kiln keys revoke ID --tenant T
    kiln tenants set-quota T --max-running-jobs 2 --max-queued-jobs 100 --max-storage-bytes 50G
    kiln tenants show T          usage and quotas
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import warnings

from app.core.errors import KilnError
from app.core.settings import get_settings


def cmd_db_upgrade(_args) -> int:
    from app.core import bootstrap

    settings = get_settings()
    bootstrap.prepare(settings)  # the schema, and the embedded broker's tables beside it
    print(f"database at head: {_redact(settings.database_url)}")
    return 0


def _admin_session():
    from app.core.db.engine import session_factory

    return session_factory(get_settings().database_url)()


def cmd_keys_create(args) -> int:
    from app.core import tenants

    with _admin_session() as session:
        tenant = tenants.get_or_create_tenant(session=session, name=args.tenant)
        key, secret = tenants.create_key(session=session, tenant=tenant, name=args.name, scopes=args.scopes.split(","),
                                         expires_in_days=args.expires_days)
        session.commit()
    expiry = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
    print(f"new API key {key.id} for tenant {args.tenant!r}, scopes {','.join(key.scopes)}{expiry} (shown once; only its hash is stored):")
    print(secret)
    return 0


def cmd_keys_list(args) -> int:
    from app.core import tenants

    with _admin_session() as session:
        tenant = tenants.get_tenant(session=session, name=args.tenant)
        keys = tenants.list_keys(session=session, tenant_id=tenant.id, limit=10_000).items
    print(f"{'id':<26} {'prefix':<13} {'scopes':<26} {'created':<17} {'last used':<17} {'expires':<17} {'revoked':<17} name")
    for k in keys:
        print(f"{k.id:<26} {k.prefix:<13} {','.join(k.scopes):<26} {_when(k.created_at):<17} {_when(k.last_used_at):<17} "
              f"{_when(k.expires_at):<17} {_when(k.revoked_at):<17} {k.name}")
    return 0


def cmd_keys_revoke(args) -> int:
    from app.core import tenants

    with _admin_session() as session:
        tenant = tenants.get_tenant(session=session, name=args.tenant)
        key = tenants.revoke_key(session=session, tenant_id=tenant.id, key_id=args.key_id)
        session.commit()
    print(f"revoked {key.id} ({key.prefix}...); API processes stop taking it within KILN_AUTH_CACHE_SECONDS ({get_settings().auth_cache_seconds:g} s)")
    return 0


def cmd_tenants_set_quota(args) -> int:
    from app.core import quotas, tenants

    values = {name: quotas.parse_quota(name, raw) for name in quotas.QUOTAS if (raw := getattr(args, name)) is not None}
    if not values:
        print("nothing to set: give --max-running-jobs, --max-queued-jobs, --max-storage-bytes or --max-priority", file=sys.stderr)
        return 2
    with _admin_session() as session:
        tenant = tenants.get_or_create_tenant(session=session, name=args.tenant)
        quotas.set_quotas(session=session, tenant=tenant, values=values)
        session.commit()
    return cmd_tenants_show(args)


def cmd_tenants_show(args) -> int:
    from app.core import quotas, tenants

    with _admin_session() as session:
        tenant = tenants.get_tenant(session=session, name=args.tenant)
        usage = quotas.usage(session=session, tenant_id=tenant.id)
    print(f"tenant {tenant.name!r} ({tenant.id})")
    print("  jobs:    " + (", ".join(f"{n} {state}" for state, n in sorted(usage.jobs.items())) or "none"))
    s = usage.storage
    print(f"  storage: {s.total:,} bytes (datasets {s.datasets:,}, models {s.models:,}, checkpoints {s.checkpoints:,})")
    print("  quotas:  " + ", ".join(f"{name} {'none' if value is None else f'{value:,}'}" for name, value in usage.quotas.items()))
    return 0


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def _prometheus_dir(settings) -> None:
    """A folder for this run's API processes to write their metrics to (prometheus-client's
    multiprocess mode), set before any of them imports the library. One per run, so two APIs on a
    host never add up each other's; those of runs no longer alive are removed."""
    root = settings.data_dir / "prometheus"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_in_use(host: str, port: int) -> str | None:
    """Why the API cannot listen there, said for a person (uvicorn would say only "[Errno 98]")."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a socket in TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: set KILN_PORT (or --port) to another, or stop the server that holds it"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def cmd_api(args) -> int:
    import uvicorn

    settings = get_settings()
    if problem := _port_in_use(args.host or settings.host, args.port or settings.port):
        print(f"kiln: {problem}", file=sys.stderr)
        return 1
    if settings.metrics_enabled:
        _prometheus_dir(settings)
    uvicorn.run(
        "app.api.main:create_app", factory=True, host=args.host or settings.host, port=args.port or settings.port,
        workers=args.workers, log_level="info", access_log=False,
    )
    return 0


def cmd_worker(args) -> int:
    if args.device:  # before the worker's modules read the settings
        os.environ["KILN_DEVICE"] = args.device
        get_settings.cache_clear()
    from app.core.queue import queues_served
    from worker.attempt import worker_device
    from worker.celery_app import app

    settings = get_settings()
    argv = [
        "worker", "--pool=solo", "--concurrency=1", "-Q", ",".join(queues_served(settings, worker_device(settings))), "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"kiln-{os.getpid()}@{socket.gethostname()}",
    ]
    # Celery warns a worker run as root (containers, CI) against unpickling messages as root; Kiln's
    # broker accepts JSON only (app.core.queue), so what the warning guards against cannot happen here.
    warnings.filterwarnings("ignore", message="You're running the worker with superuser privileges")
    app.worker_main(argv)
    return 0


def cmd_up(args) -> int:
    from app.core import bootstrap

    settings = get_settings()
    if problem := _port_in_use(args.host or settings.host, args.port or settings.port):  # before a worker is started for nothing
        print(f"kiln: {problem}", file=sys.stderr)
        return 1
    bootstrap.prepare(settings)
    prefix = bootstrap.ensure_default_key(settings)
    if prefix:
        # Not printed in full: terminals and their logs are read by more people than the key is for.
        print(f"\nCreated tenant 'default' and its first API key ({prefix}...), written to {settings.api_key_file} (mode 600).\n"
              f"Use it with:  curl -H \"Authorization: Bearer $(cat {settings.api_key_file})\" ...\n", flush=True)
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

    worker = sub.add_parser("worker", help="a training worker")
    worker.add_argument("--device", help="cpu, cuda, cuda:N (default KILN_DEVICE: auto, a GPU where there is one); "
                                         "one worker per GPU, or set CUDA_VISIBLE_DEVICES")
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key for a tenant (created if new)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--scopes", default="read,train,predict,admin", help="comma-separated: read, train, predict, admin")
    create.add_argument("--expires-days", type=float, help="the key stops working after this many days")
    create.set_defaults(func=cmd_keys_create)
    listing = keys_sub.add_parser("list", help="a tenant's keys (no secrets)")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.add_argument("--tenant", required=True)
    revoke.set_defaults(func=cmd_keys_revoke)

    tenants = sub.add_parser("tenants", help="tenants and their quotas")
    tenants_sub = tenants.add_subparsers(dest="tenants_command", required=True)
    quota = tenants_sub.add_parser("set-quota", help="set a tenant's quotas (created if new); 'none' removes one")
    quota.add_argument("tenant")
    quota.add_argument("--max-running-jobs", help="more jobs than this wait in the queue")
    quota.add_argument("--max-queued-jobs", help="submits past this are refused (429)")
    quota.add_argument("--max-storage-bytes", help="datasets, models and checkpoints: 50G, 512MiB (G = 10^9, GiB = 2^30)")
    quota.add_argument("--max-priority", help="the highest job priority its members may ask for (0..10)")
    quota.set_defaults(func=cmd_tenants_set_quota)
    show = tenants_sub.add_parser("show", help="a tenant's usage and quotas")
    show.add_argument("tenant")
    show.set_defaults(func=cmd_tenants_show)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KilnError as exc:  # a name that is not there, a scope that does not exist: said plainly
        print(f"kiln: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

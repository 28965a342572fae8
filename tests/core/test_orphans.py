"""Orphaned folders in the artifact store (no row owns them) are collected once they are older
than the grace period; owned ones and young ones stay. On the folder and on a real S3 server."""

from __future__ import annotations

import time

from app.core.artifacts import layout
from app.core.orphans import sweep
from tests.core.test_artifact_store import settings, store  # noqa: F401 - fixtures
from tests.core.test_reconciler import make_env, new_job


def test_orphans_past_the_grace_period_are_collected_and_nothing_else(settings, store, tmp_path):  # noqa: F811
    env_settings, sessions, tenant = make_env(tmp_path / "db")
    job_id = new_job(sessions, tenant)
    store.write_bytes(layout.checkpoint_card(job_id), b"{}")  # owned: its job exists
    store.write_bytes(layout.model_file(layout.model_prefix("mdl_lost"), "card"), b"{}")  # a model whose outcome never landed
    store.write_bytes(f"{layout.dataset_prefix('ds_failed')}/train_x.npy", b"x")  # an upload that failed after publishing
    time.sleep(2.2)  # S3 keeps whole seconds: a margin of one
    store.write_bytes(layout.model_file(layout.model_prefix("mdl_young"), "card"), b"{}")  # still within the grace period
    removed = sweep(sessions=sessions, store=store, grace_seconds=2.0)
    assert sorted(removed) == ["datasets/ds_failed", "models/mdl_lost"]
    assert store.list("models") == ["models/mdl_young"] and store.list("datasets") == []
    assert store.list("jobs") == [f"jobs/{job_id}"]

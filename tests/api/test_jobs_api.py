import copy
import re

import pytest

from tests.specs import LENET_JOB


def job(**changes):
    spec = copy.deepcopy(LENET_JOB)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = spec
        for p in parents:
            target = target[p]
        if value is ...:
            del target[leaf]
        else:
            target[leaf] = value
    return spec


def test_submit_answers_201_with_location_and_the_queued_job(client, auth):
    r = client.post("/v1/jobs", json=LENET_JOB, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"].endswith(f"/v1/jobs/{body['id']}")
    assert body["state"] == "queued"
    assert body["attempt"] == 0
    assert body["progress"] == {"epoch": 0, "epochs": 10, "step": 0, "total_steps": 0, "fraction": 0.0,
                                "elapsed_seconds": None, "eta_seconds": None}
    assert body["error"] is None and body["model_id"] is None and body["started_at"] is None
    # The stored spec is what will run: defaults filled in.
    assert body["spec"]["model"]["params"] == {"activation": "relu", "negative_slope": 0.01, "pooling": "max"}
    assert client.get(r.headers["location"], headers=auth).json()["id"] == body["id"]


def test_curl_style_form_content_type_is_read_as_json(client, auth):
    import json

    r = client.post("/v1/jobs", content=json.dumps(LENET_JOB), headers={**auth, "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text


def test_list_is_newest_first_with_cursor_paging_and_state_filter(client, auth):
    ids = [client.post("/v1/jobs", json=job(name=f"j{i}"), headers=auth).json()["id"] for i in range(5)]
    client.post(f"/v1/jobs/{ids[0]}/cancel", headers=auth)
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=params, headers=auth).json()
        assert len(page["items"]) <= 2
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    cancelled = client.get("/v1/jobs", params={"state": "cancelled"}, headers=auth).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]


def test_cancel_of_a_queued_job_is_immediate_and_a_second_cancel_conflicts(client, auth):
    job_id = client.post("/v1/jobs", json=LENET_JOB, headers=auth).json()["id"]
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled" and r.json()["finished_at"] is not None
    again = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    # Its log says what happened to it, in the file and in its event stream alike.
    log = client.get(f"/v1/jobs/{job_id}/logs", headers=auth).text
    assert log.count("\n") == 1 and log.endswith(" cancelled while queued, before any attempt started\n")


def _error(r, status=422):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message", "details"}
    return err


def test_unknown_architecture_lists_the_known_ones(client, auth):
    err = _error(client.post("/v1/jobs", json=job(model__architecture="vgg16"), headers=auth))
    assert "lenet5" in err["message"] and "mlp" in err["message"]
    assert err["details"][0]["loc"] == ["body", "model", "architecture"]


def test_value_out_of_range_names_the_field(client, auth):
    err = _error(client.post("/v1/jobs", json=job(training__epochs=0), headers=auth))
    assert err["details"][0]["loc"] == ["body", "training", "epochs"]
    err = _error(client.post("/v1/jobs", json=job(training__optimizer={"name": "sgd", "lr": -1}), headers=auth))
    assert err["details"][0]["loc"][:3] == ["body", "training", "optimizer"]
    err = _error(client.post("/v1/jobs", json=job(data__validation_fraction=0.9), headers=auth))
    assert err["details"][0]["loc"] == ["body", "data", "validation_fraction"]


def test_missing_field_and_unknown_field_are_named(client, auth):
    err = _error(client.post("/v1/jobs", json=job(model=...), headers=auth))
    assert ["body", "model"] in [d["loc"] for d in err["details"]]
    err = _error(client.post("/v1/jobs", json=job(trainnig={}), headers=auth))
    assert ["body", "trainnig"] in [d["loc"] for d in err["details"]]


def test_bad_architecture_params_are_named(client, auth):
    err = _error(client.post("/v1/jobs", json=job(model__params={"activation": "swish"}), headers=auth))
    assert err["details"][0]["loc"] == ["body", "model", "params", "activation"]
    err = _error(client.post("/v1/jobs", json=job(model={"architecture": "mlp", "params": {"hidden_sizes": [0]}}), headers=auth))
    assert err["details"][0]["loc"] == ["body", "model", "params", "hidden_sizes", 0]


def test_unknown_dataset_and_unknown_optimizer(client, auth):
    err = _error(client.post("/v1/jobs", json=job(data__dataset="builtin:imagenet"), headers=auth))
    assert err["details"][0]["loc"] == ["body", "data", "dataset"]
    err = _error(client.post("/v1/jobs", json=job(training__optimizer={"name": "lbfgs"}), headers=auth))
    assert err["details"][0]["loc"][:3] == ["body", "training", "optimizer"]


def test_body_that_is_not_json_is_a_422_not_a_500(client, auth):
    r = client.post("/v1/jobs", content=b"{not json", headers={**auth, "content-type": "application/json"})
    _error(r)
    _error(client.post("/v1/jobs", json=[1, 2], headers=auth))
    _error(client.post("/v1/jobs", json={"name": 5, "model": "x", "data": None}, headers=auth))


def test_oversized_body_is_a_413(client, auth, settings):
    big = job(name="x" * 10)
    big["padding"] = "y" * (settings.max_request_bytes + 1)
    err = _error(client.post("/v1/jobs", json=big, headers=auth), status=413)
    assert err["code"] == "payload_too_large"


def test_bad_cursor_and_limit_are_422(client, auth):
    _error(client.get("/v1/jobs", params={"cursor": "garbage"}, headers=auth))
    _error(client.get("/v1/jobs", params={"limit": 0}, headers=auth))
    _error(client.get("/v1/jobs", params={"state": "exploded"}, headers=auth))


def test_unknown_job_is_404_in_the_error_shape(client, auth):
    err = _error(client.get("/v1/jobs/job_nope", headers=auth), status=404)
    assert err["code"] == "not_found"
    _error(client.get("/v1/jobs/job_nope/metrics", headers=auth), status=404)
    _error(client.post("/v1/jobs/job_nope/cancel", headers=auth), status=404)


def test_generative_families_take_every_optimizer_and_schedule_and_refuse_what_means_nothing_to_them(client, auth):
    gan = {"name": "g", "model": {"architecture": "gan"}, "data": {"dataset": "builtin:digits"},
           "training": {"optimizer": {"name": "sgd", "lr": 0.01}, "lr_schedule": {"name": "cosine", "warmup_epochs": 1}}}
    assert client.post("/v1/jobs", json=gan, headers=auth).status_code == 201
    # plateau watches val_loss or train_loss, which a GAN does not report; L1 has no place in its losses.
    gan["training"] |= {"lr_schedule": {"name": "plateau"}, "l1": 0.001}
    err = _error(client.post("/v1/jobs", json=gan, headers=auth))
    assert {tuple(d["loc"]) for d in err["details"]} == {("body", "training", "lr_schedule", "name"), ("body", "training", "l1")}
    rbm = {"name": "r", "model": {"architecture": "rbm"}, "data": {"dataset": "builtin:digits"},
           "training": {"optimizer": {"name": "adam", "lr": 0.01}, "lr_schedule": {"name": "step", "step_epochs": 2}, "early_stopping": {}}}
    assert _error(client.post("/v1/jobs", json=rbm, headers=auth))["details"][0]["loc"] == ["body", "training", "early_stopping"]
    rbm["training"].pop("early_stopping")
    assert client.post("/v1/jobs", json=rbm, headers=auth).status_code == 201


def test_a_non_finite_metric_in_the_database_never_makes_a_500(client, auth, settings):
    """Rows written before the loop refused non-finite metrics, or by hand: JSON has no NaN, the answer leaves them out."""
    from datetime import datetime, timezone

    from sqlalchemy import update

    from app.core.db.engine import session_factory
    from app.core.db.tables import Job, MetricPoint

    job = client.post("/v1/jobs", json=LENET_JOB, headers=auth).json()
    with session_factory(settings.database_url)() as session:
        session.execute(update(Job).where(Job.id == job["id"]).values(latest_metrics={"val_loss": float("nan"), "train_loss": 0.5}))
        tenant_id = session.get(Job, job["id"]).tenant_id
        session.add(MetricPoint(job_id=job["id"], tenant_id=tenant_id, name="val_loss", step=1, epoch=1, value=float("inf"),
                                time=datetime.now(timezone.utc)))
        session.commit()
    r = client.get(f"/v1/jobs/{job['id']}", headers=auth)
    assert r.status_code == 200 and r.json()["metrics"] == {"train_loss": 0.5}
    series = client.get(f"/v1/jobs/{job['id']}/metrics", headers=auth)
    assert series.status_code == 200 and series.json()["series"].get("val_loss", []) == []
    assert client.get("/v1/jobs", headers=auth).status_code == 200


@pytest.mark.parametrize("ref", ["builtin:parity?length=²", "builtin:parity?length=١٠", "builtin:parity?length=1e3"])
def test_a_builtin_parameter_that_is_not_an_ascii_number_is_a_422(client, auth, ref):
    spec = {"name": "p", "model": {"architecture": "rnn"}, "data": {"dataset": ref}}
    r = client.post("/v1/jobs", json=spec, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["body", "data", "dataset"]


def test_a_job_that_fails_unexpectedly_tells_its_owner_without_leaking_server_details(client, auth, settings, monkeypatch):
    """The exception's own text (a server path, device details) stays in the job's log."""
    from tests.api.inline_worker import run_job
    from worker.training import job as training_job

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert at /srv/kiln/.venv/lib/python3.11/site-packages/torch/nn/x.py:12")

    monkeypatch.setattr(training_job, "prepare", broken)
    job = client.post("/v1/jobs", json={**LENET_JOB, "training": {**LENET_JOB["training"], "epochs": 1}}, headers=auth).json()
    assert run_job(job["id"], settings) == "failed"
    error = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["error"]
    assert error["type"] == "RuntimeError" and "/srv/kiln" not in error["message"] and "CUDA" not in error["message"]
    assert f"/v1/jobs/{job['id']}/logs" in error["message"]
    assert "/srv/kiln/.venv" in client.get(f"/v1/jobs/{job['id']}/logs", headers=auth).text


@pytest.fixture(scope="module")
def long_series(client, owner, settings):
    """A job with 100,000 train_loss points, one of them a spike, written as a worker writes them."""
    from datetime import datetime, timezone

    from app.core.db.engine import session_factory
    from app.core.db.tables import Job
    from app.core.jobs import metrics

    job = client.post("/v1/jobs", json=LENET_JOB, headers=owner).json()
    at = datetime.now(timezone.utc)
    with session_factory(settings.database_url)() as session:
        tenant_id = session.get(Job, job["id"]).tenant_id
        points = [metrics.Point("train_loss", step, step // 1000, 1.0 / (1 + step / 1000), at) for step in range(1, 100_001)]
        points[61_234] = metrics.Point("train_loss", 61_235, 61, 50.0, at)  # the spike a chart must show
        points += [metrics.Point("val_loss", step, step // 1000, 0.5, at) for step in range(1000, 100_001, 1000)]
        metrics.write(session=session, tenant_id=tenant_id, job_id=job["id"], points=points)
        session.commit()
    return job["id"]


def test_a_long_series_is_downsampled_on_the_server_and_its_spikes_survive(client, owner, long_series):
    r = client.get(f"/v1/jobs/{long_series}/metrics", params={"max_points": 500}, headers=owner)
    assert r.status_code == 200
    body = r.json()
    train = body["series"]["train_loss"]
    assert len(train) <= 500 and body["total_points"] == {"train_loss": 100_000, "val_loss": 100}
    assert max(p["value"] for p in train) == 50.0 and [p["step"] for p in train] == sorted(p["step"] for p in train)
    assert len(body["series"]["val_loss"]) == 100  # short enough to come whole
    window = client.get(f"/v1/jobs/{long_series}/metrics", params={"names": "train_loss", "since_step": 99_000, "until_step": 99_300},
                        headers=owner).json()
    assert [p["step"] for p in window["series"]["train_loss"]] == list(range(99_001, 99_301))


def test_raw_points_page_by_cursor_in_step_order(client, owner, long_series):
    url = f"/v1/jobs/{long_series}/metrics/train_loss/points"
    seen, cursor = [], None
    while True:
        page = client.get(url, params={"limit": 700, "since_step": 97_000} | ({"cursor": cursor} if cursor else {}), headers=owner).json()
        seen += [p["step"] for p in page["points"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(97_001, 100_001))
    assert client.get(url, params={"cursor": "nope"}, headers=owner).status_code == 422


def test_metric_reads_are_bounded(client, owner, long_series, settings):
    names = ",".join(f"m{i}" for i in range(settings.max_query_list + 1))
    r = client.get(f"/v1/jobs/{long_series}/metrics", params={"names": names}, headers=owner)
    assert r.status_code == 413 and "KILN_MAX_QUERY_LIST" in r.json()["error"]["message"]
    r = client.get(f"/v1/jobs/{long_series}/metrics", params={"names": ",".join(f"m{i}" for i in range(3_000))}, headers=owner)
    assert r.status_code == 413  # thousands of names overflowed SQLite's variables: a 500
    # Past KILN_MAX_METRIC_POINTS an ask gets the cap: never more points than that in one answer.
    cap = settings.max_metric_points
    charted = client.get(f"/v1/jobs/{long_series}/metrics", params={"max_points": 10**6, "names": "train_loss"}, headers=owner).json()
    # M4 stretches are aligned to the roll-ups: at least 4/5 of cap/4 of them, two points each on this falling curve
    assert cap * 2 // 5 < len(charted["series"]["train_loss"]) <= cap and charted["total_points"]["train_loss"] == 100_000
    page = client.get(f"/v1/jobs/{long_series}/metrics/train_loss/points", params={"limit": 10**6}, headers=owner).json()
    assert len(page["points"]) == cap and page["next_cursor"] == str(cap)


def test_a_job_no_worker_could_hold_is_refused_at_submit_naming_the_estimate_and_the_limit(client, auth, settings):
    wide = {"name": "wide", "data": {"dataset": "builtin:digits"},
            "model": {"architecture": "sequential", "params": {"layers": [{"type": "flatten"}] + [
                {"type": "linear", "out_features": 65_536}, {"type": "relu"}] * 8 + [{"type": "linear", "out_features": 10}]}}}
    r = client.post("/v1/jobs", json=wide, headers=auth)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "KILN_MAX_MODEL_PARAMETERS" in message and "parameters" in message

    # 40M samples that LeNet-5 resizes to 1x32x32 float32: ~160 GB on the worker before the first step.
    from app.core.db.engine import session_factory
    from app.core.db.tables import Dataset
    from app.core.db.types import utcnow

    tenant_id = client.get("/v1/jobs", headers=auth) and _tenant_of(settings, auth)
    with session_factory(settings.database_url)() as session:
        session.add(Dataset(id="ds_huge", tenant_id=tenant_id, name="huge", format="idx", kind="image", task="classification",
                            num_samples=40_000_000, num_test_samples=0, sample_shape=[28, 28], dtype="uint8", num_classes=10,
                            class_names=[str(i) for i in range(10)], class_counts=[4_000_000] * 10, stats={}, value_max=255.0, details={},
                            size_bytes=0, sha256="0" * 64, artifact_path="datasets/ds_huge", created_at=utcnow()))
        session.commit()
    r = client.post("/v1/jobs", json={"name": "huge", "model": {"architecture": "lenet5"}, "data": {"dataset": "ds_huge"}}, headers=auth)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "KILN_WORKER_MEMORY_BYTES" in message and "GB" in message


def _tenant_of(settings, auth) -> str:
    from app.core import tenants
    from app.core.db.engine import session_factory

    with session_factory(settings.database_url)() as session:
        return tenants.authenticate(session=session, key=auth["Authorization"].split()[1]).tenant_id


def test_a_submitted_job_shows_what_it_is_estimated_to_need(client, auth):
    job = client.post("/v1/jobs", json=LENET_JOB, headers=auth).json()
    lenet = next(a for a in client.get("/v1/architectures", headers=auth).json() if a["name"] == "lenet5")
    assert job["estimate"]["parameters"] == lenet["parameter_count"]  # ten classes, as the listing assumes
    assert 1_000_000 < job["estimate"]["memory_bytes"] < 1_000_000_000


def test_the_operators_runtime_limit_is_a_ceiling_not_a_default(client, auth, settings):
    spec = {**LENET_JOB, "training": {**LENET_JOB["training"], "max_runtime_seconds": settings.max_runtime_seconds + 1}}
    r = client.post("/v1/jobs", json=spec, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["body", "training", "max_runtime_seconds"]
    assert "KILN_MAX_RUNTIME_SECONDS" in r.json()["error"]["message"]


def test_each_attempt_is_recorded_with_how_far_it_got_and_its_peak_memory(client, auth, settings):
    from tests.api.inline_worker import run_job

    job = client.post("/v1/jobs", json={**LENET_JOB, "training": {**LENET_JOB["training"], "epochs": 1}}, headers=auth).json()
    assert client.get(f"/v1/jobs/{job['id']}/attempts", headers=auth).json() == []
    assert run_job(job["id"], settings) == "succeeded"
    done = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()
    (attempt,) = client.get(f"/v1/jobs/{job['id']}/attempts", headers=auth).json()
    assert attempt["attempt"] == 1 and attempt["outcome"] == "succeeded" and attempt["ended_at"] is not None
    assert attempt["last_step"] == done["progress"]["total_steps"] and attempt["checkpoint_step"] == done["progress"]["total_steps"]
    assert attempt["peak_memory_bytes"] > 50_000_000  # torch alone takes more


def test_a_queued_job_says_where_it_stands_and_what_it_waits_for(client, new_key):
    auth = new_key()
    spec = {"name": "q", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}}
    first = client.post("/v1/jobs", json=spec, headers=auth).json()
    gpu = client.post("/v1/jobs", json={**spec, "priority": 3, "resources": {"device": "cuda"}}, headers=auth).json()
    assert (gpu["priority"], gpu["device"]) == (3, "cuda") and first["device"] == "any"
    assert first["queue_position"] is None  # only GET /v1/jobs/{id} works it out
    got = client.get(f"/v1/jobs/{gpu['id']}", headers=auth).json()
    assert got["waiting_for"] == "a cuda worker" and isinstance(got["queue_position"], int)
    assert client.get(f"/v1/jobs/{first['id']}", headers=auth).json()["waiting_for"] == "a worker"
    queue = client.get("/v1/queue", headers=auth).json()
    assert queue["yours"] == {"queued": 2, "running": 0}
    assert [d["device"] for d in queue["devices"]] == ["cpu", "cuda"] and all(d["workers"] == 0 for d in queue["devices"])
    assert next(d for d in queue["devices"] if d["device"] == "cuda")["queued"] >= 2  # "any" counts under each device
    r = client.post("/v1/jobs", json={**spec, "resources": {"device": "tpu"}}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"][:3] == ["body", "resources", "device"]
    r = client.post("/v1/jobs", json={**spec, "priority": 11}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["body", "priority"]


def test_a_priority_above_the_tenants_max_is_forbidden(client, settings):
    from app.core import quotas, tenants
    from app.core.db.engine import session_factory

    with session_factory(settings.database_url)() as s:
        t = tenants.get_or_create_tenant(session=s, name="capped")
        quotas.set_quotas(session=s, tenant=t, values={"max_priority": 0})
        _, key = tenants.create_key(session=s, tenant=t)
        s.commit()
    spec = {"name": "q", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}, "priority": 1}
    r = client.post("/v1/jobs", json=spec, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and "max_priority of 0" in r.json()["error"]["message"]
    assert r.json()["error"]["details"][0]["loc"] == ["body", "priority"]


def test_a_job_without_a_name_gets_a_readable_one(client, auth):
    body = client.post("/v1/jobs", json=job(name=...), headers=auth).json()
    assert re.fullmatch(r"lenet5-digits-[0-9a-f]{4}", body["name"]), body["name"]
    assert body["spec"]["name"] == body["name"]
    other = client.post("/v1/jobs", json=job(name=...), headers=auth).json()
    assert other["name"] != body["name"]  # told apart in a list


def test_jobs_are_found_by_their_labels_every_one_matching(client, auth):
    vision = client.post("/v1/jobs", json=job(labels={"team": "vision", "sweep": "lr-3"}), headers=auth).json()
    also = client.post("/v1/jobs", json=job(labels={"team": "vision"}), headers=auth).json()
    client.post("/v1/jobs", json=job(labels={"team": "speech", "sweep": "lr-3"}), headers=auth)
    assert vision["labels"] == {"team": "vision", "sweep": "lr-3"}

    def ids(*labels):
        r = client.get("/v1/jobs", params=[("label", label) for label in labels], headers=auth)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["items"]]

    assert ids("team:vision") == [also["id"], vision["id"]]
    assert ids("team:vision", "sweep:lr-3") == [vision["id"]]
    assert ids("team:vision", "team:speech") == []
    assert ids("team:robotics") == []
    r = client.get("/v1/jobs", params={"label": "team=vision"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"][:2] == ["query", "label"]


def test_label_bounds_are_named(client, auth, settings):
    many = {f"k{i}": "v" for i in range(settings.max_labels + 1)}
    r = client.post("/v1/jobs", json=job(labels=many), headers=auth)
    assert r.status_code == 422 and "KILN_MAX_LABELS" in r.json()["error"]["message"]
    r = client.post("/v1/jobs", json=job(labels={"no spaces": "x"}), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"][:2] == ["body", "labels"]


def test_a_retried_submit_with_the_same_idempotency_key_answers_again_and_creates_nothing(client, auth):
    key = {**auth, "Idempotency-Key": "submit-7f3a"}
    first = client.post("/v1/jobs", json=job(name="once"), headers=key)
    again = client.post("/v1/jobs", json=job(name="once"), headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert [j["id"] for j in client.get("/v1/jobs", headers=auth).json()["items"]] == [first.json()["id"]]
    other = client.post("/v1/jobs", json=job(name="another"), headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"]["message"]
    assert other.json()["error"]["details"][0]["loc"] == ["header", "Idempotency-Key"]
    # Keys are the tenant's own: another tenant's same key is another request.
    assert client.post("/v1/jobs", json=job(name="once"), headers={**auth, "Idempotency-Key": "other"}).json()["id"] != first.json()["id"]
    assert len(client.get("/v1/jobs", headers=auth).json()["items"]) == 2


def test_watching_a_val_metric_without_a_validation_split_is_refused_naming_both_fields(client, auth):
    spec = job(data__validation_fraction=0.0, training__early_stopping={"monitor": "val_accuracy", "patience": 2})
    r = client.post("/v1/jobs", json=spec, headers=auth)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert "early_stopping monitors val_accuracy" in err["message"] and "validation_fraction is 0" in err["message"]
    assert {tuple(d["loc"]) for d in err["details"]} == {("body", "training", "early_stopping", "monitor"), ("body", "data", "validation_fraction")}
    plateau = job(data__validation_fraction=0.0, training__lr_schedule={"name": "plateau"})
    assert "plateau schedule monitors val_loss" in client.post("/v1/jobs", json=plateau, headers=auth).json()["error"]["message"]
    on_train_loss = job(data__validation_fraction=0.0, training__early_stopping={"monitor": "train_loss"})
    assert client.post("/v1/jobs", json=on_train_loss, headers=auth).status_code == 201  # it has something to watch


def test_an_empty_query_parameter_means_absent(client, auth):
    mine = client.post("/v1/jobs", json=job(), headers=auth).json()["id"]
    r = client.get("/v1/jobs?state=&limit=&cursor=", headers=auth)
    assert r.status_code == 200 and mine in [j["id"] for j in r.json()["items"]]
    assert client.get("/v1/jobs?state=&limit=0", headers=auth).status_code == 422  # a value given is still checked


def test_a_spec_without_an_optimizer_gets_its_familys_default_written_into_it_and_trains(client, auth, settings):
    from tests.api.inline_worker import run_job

    def submitted(architecture: str) -> dict:
        r = client.post("/v1/jobs", json={"model": {"architecture": architecture}, "data": {"dataset": "builtin:digits"}}, headers=auth)
        assert r.status_code == 201, r.text
        return r.json()

    mlp, gan, rbm = submitted("mlp"), submitted("gan"), submitted("rbm")
    assert mlp["spec"]["training"]["optimizer"] == {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
    assert gan["spec"]["training"]["optimizer"] == {"name": "adam", "lr": 0.0002, "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0.0}
    assert rbm["spec"]["training"]["optimizer"] == {"name": "sgd", "lr": 0.05, "momentum": 0.5, "nesterov": False, "weight_decay": 0.0}
    client.post(f"/v1/jobs/{gan['id']}/cancel", headers=auth)
    client.post(f"/v1/jobs/{rbm['id']}/cancel", headers=auth)
    # The minimal MLP job trains out of the box (plain SGD at 0.01, the old default, left it at 0.669).
    assert run_job(mlp["id"], settings) == "succeeded"
    assert client.get(f"/v1/jobs/{mlp['id']}", headers=auth).json()["metrics"]["val_accuracy"] > 0.9

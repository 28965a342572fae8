"""A client generated from /openapi.json by openapi-python-client reads like a hand-written one:
its functions are named after the operations, its bodies and answers are typed, and an error comes
back as the one error shape, not as raw bytes."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def kiln_client(client, tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    (root / "openapi.json").write_text(client.get("/openapi.json").text)
    # The generator knows a few content types by name; .npy is bytes, as the generator's own
    # option for such types says (content_type_overrides).
    (root / "config.yaml").write_text("content_type_overrides:\n  application/x-npy: application/octet-stream\n")
    bin_dir = Path(sys.executable).parent
    run = subprocess.run(
        [bin_dir / "openapi-python-client", "generate", "--path", root / "openapi.json", "--meta", "none", "--output-path", root / "kiln_openapi",
         "--config", root / "config.yaml"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # (Named apart from Kiln's own client package, kiln_client.) Any part of the schema the generator
    # cannot read is dropped with a warning: there must be none.
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("kiln_openapi")
    finally:
        sys.path.remove(str(root))


@pytest.fixture
def api(kiln_client, client, auth):
    transport = TestClient(client.app, base_url="http://testserver", headers=auth)
    return kiln_client.AuthenticatedClient(base_url="http://testserver", token="in the headers").set_httpx_client(transport)


def test_every_operation_is_a_function_named_after_it(kiln_client, client):
    ids = {op["operationId"] for item in client.get("/openapi.json").json()["paths"].values() for op in item.values()}
    expected = {re.sub(r"(?<!^)(?=[A-Z])", "_", i).lower() for i in ids}
    api_dir = Path(kiln_client.__file__).parent / "api"
    generated = {p.stem for p in api_dir.glob("*/*.py") if p.stem != "__init__"}
    assert generated == expected
    assert {"submit_job", "get_job", "predict", "list_models", "create_key"} <= generated


def test_a_job_submitted_and_read_back_through_the_generated_client(kiln_client, api):
    models = importlib.import_module("kiln_openapi.models")
    spec = models.JobSpec.from_dict({"name": "typed", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"},
                                     "training": {"epochs": 2}})
    job = importlib.import_module("kiln_openapi.api.jobs.submit_job").sync(client=api, body=spec)
    assert isinstance(job, models.JobOut) and job.id.startswith("job_") and job.state == models.JobOutState.QUEUED
    again = importlib.import_module("kiln_openapi.api.jobs.get_job").sync(client=api, job_id=job.id)
    assert isinstance(again, models.JobOut) and again.name == "typed"
    page = importlib.import_module("kiln_openapi.api.jobs.list_jobs").sync(client=api, limit=1)
    assert [j.id for j in page.items] == [job.id]


def test_errors_come_back_typed(kiln_client, api):
    models = importlib.import_module("kiln_openapi.models")
    missing = importlib.import_module("kiln_openapi.api.jobs.get_job").sync(client=api, job_id="job_" + "0" * 32)
    assert isinstance(missing, models.ErrorOut) and missing.error.code == "not_found"
    spec = models.JobSpec.from_dict({"name": "bad", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"},
                                     "training": {"epochs": 0}})
    refused = importlib.import_module("kiln_openapi.api.jobs.submit_job").sync(client=api, body=spec)
    assert isinstance(refused, models.ErrorOut) and refused.error.code == "validation_error"
    assert refused.error.details[0].loc == ["body", "training", "epochs"]

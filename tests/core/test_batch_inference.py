"""Submitting batch-inference jobs, on both databases."""

from __future__ import annotations

import pytest

from app.core import bootstrap, tenants, trained_models
from app.core.db.engine import session_factory
from app.core.jobs import batch_inference
from app.core.model_card import ModelCard, SavedModel
from app.core.settings import Settings


@pytest.fixture(params=["sqlite", "postgres"])
def env(request, tmp_path):
    url = request.getfixturevalue("own_postgres_url") if request.param == "postgres" else ""
    settings = Settings(data_dir=tmp_path, database_url=url)
    bootstrap.prepare(settings)
    sessions = session_factory(settings.database_url)
    with sessions() as s:
        tenant = tenants.get_or_create_tenant(session=s, name="t")
        card = ModelCard(architecture="rnn", params={}, input_shape=[10], sample_shape=[10], class_names=["even", "odd"],
                         preprocessing={})
        trained_models.add(session=s, tenant_id=tenant.id, job_id=None, saved=SavedModel("mdl_rnn", card, "models/mdl_rnn", 1))
        s.commit()
    return sessions, tenant.id


def test_a_dataset_reference_of_the_longest_allowed_length_makes_a_job_whose_name_fits(env):
    """The job's name is made from the model id and the dataset reference (up to 200 characters):
    it is cut to the column's 200, where PostgreSQL refused it with a server error."""
    sessions, tenant = env
    ref = "builtin:parity?length=" + "0" * 176 + "10"
    assert len(ref) == 200
    with sessions() as s:
        job = batch_inference.create(session=s, tenant_id=tenant, model_id="mdl_rnn", dataset_id=ref, split=None, batch_size=10,
                                     max_attempts=1)
        s.commit()
    assert job.name.startswith("inference mdl_rnn on builtin:parity") and len(job.name) == 200

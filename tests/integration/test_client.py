"""The SDK and the `kiln` command line against a real server, on both backends: what a user in a
notebook or a terminal does, end to end. The CLI runs in a real terminal (pexpect's pty), and the
test reads what is on its screen."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import numpy as np
import pexpect
import pytest
from sklearn.datasets import load_digits

from kiln_client import Client, JobFailed, NotFound, ValidationError
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

KILN = str(Path(sys.executable).with_name("kiln"))
JOB = {
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [64]}},
    "data": {"dataset": "builtin:digits"},
    "training": {"epochs": 4, "batch_size": 16},
}
EXPLODING = {**JOB, "training": {"epochs": 3, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 10, "momentum": 0.99}}}


def key_of(stack) -> str:
    return stack.new_tenant().headers["Authorization"].removeprefix("Bearer ")


def test_the_sdk_uploads_submits_follows_through_dropped_connections_waits_and_predicts(stack, tmp_path):
    key = key_of(stack)
    proxy = TcpProxy(stack.port)  # the stream's connections are cut under the SDK
    kiln = Client(proxy.url, key)
    digits = load_digits()
    np.savez(tmp_path / "digits.npz", x=digits.images, y=digits.target)
    sent: list[int] = []
    dataset = kiln.datasets.upload(tmp_path / "digits.npz", format="npz", progress=sent.append)
    assert dataset["num_samples"] == 1797 and dataset["name"] == "digits.npz"
    assert sum(sent) == (tmp_path / "digits.npz").stat().st_size

    job = kiln.jobs.submit({**JOB, "data": {"dataset": dataset["id"]}, "labels": {"via": "sdk"}}, idempotency_key="first-try")
    again = kiln.jobs.submit({**JOB, "data": {"dataset": dataset["id"]}, "labels": {"via": "sdk"}}, idempotency_key="first-try")
    assert again.id == job.id  # a retried submit makes nothing new

    seen = []
    for event in job.events():
        seen.append(event)
        if len(seen) in (3, 12):  # twice, mid-job: the connection dies, and the stream resumes itself
            proxy.down()
            proxy.up()
    assert seen[-1].kind == "end" and seen[-1].data == {"state": "succeeded"}
    assert [e.id for e in seen] == list(range(1, len(seen) + 1))  # every event once, none twice
    assert [e.id for e in seen] == [e.id for e in job.events()]

    done = job.wait(timeout=60)
    assert done.state == "succeeded" and [j.id for j in kiln.jobs.list(labels={"via": "sdk"})] == [job.id]
    model = done.model()
    answer = model.predict(digits.images[:64])
    served = stack_predict(stack, key, model.id, digits.images[:64])
    assert answer.predictions == served["predictions"] and answer.probabilities == served["probabilities"]
    assert sum(p == str(t) for p, t in zip(answer.predictions, digits.target[:64])) > 48
    # Its newest checkpoint as a model of its own: the same weights (the last epoch's), a new id.
    latest = done.model_from_checkpoint("latest")
    assert latest.id != model.id and latest.data["job_id"] == job.id and latest.data["metrics"]["val_loss"] == model.data["metrics"]["val_loss"]
    assert latest.predict(digits.images[:64]).probabilities == answer.probabilities

    with pytest.raises(NotFound):
        kiln.jobs.get("job_not_there")
    with pytest.raises(ValidationError) as invalid:
        kiln.jobs.submit({**JOB, "training": {"epochs": 0}})
    assert "body.training.epochs" in invalid.value.fields
    with pytest.raises(JobFailed) as failed:
        kiln.jobs.submit(EXPLODING).wait(timeout=120)
    assert failed.value.error["type"] == "non_finite_loss"
    proxy.down()


def stack_predict(stack, key: str, model_id: str, samples) -> dict:
    import httpx

    r = httpx.post(f"{stack.base_url}/v1/models/{model_id}/predict", json={"inputs": samples.tolist()},
                   headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def run_kiln(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, int]:
    """``kiln`` run to its end in a terminal: what it printed, and its exit code."""
    return pexpect.run(shlex.join([KILN, *args]), env=env, cwd=str(cwd), encoding="utf-8", withexitstatus=True, timeout=120)


def terminal(args: list[str], env: dict[str, str], cwd: Path) -> pexpect.spawn:
    """``kiln`` in a real terminal of 32 rows by 150 columns, as a user's shell starts it: with
    Ctrl-C's SIGINT at its default (a test run started in the background, `make test &`, passes
    SIGINT down ignored, and Python keeps an ignored SIGINT ignored)."""
    return pexpect.spawn(KILN, args, env=env, cwd=str(cwd), dimensions=(32, 150), encoding="utf-8", timeout=120,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def screen(child: pexpect.spawn) -> str:
    """All the terminal received, without its colour and cursor codes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before or "")


def cli_env(stack, key: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    return {**env, "KILN_URL": stack.base_url, "KILN_API_KEY": key, "KILN_CONFIG": str(tmp_path / "config.json"), "TERM": "xterm-256color"}


def test_kiln_submit_follow_draws_a_live_bar_and_exits_with_the_jobs_outcome(stack, tmp_path):
    key = key_of(stack)
    env = cli_env(stack, key, tmp_path)
    (tmp_path / "job.yaml").write_text("model:\n  architecture: mlp\n  params: {hidden_sizes: [64]}\ndata:\n  dataset: builtin:digits\n"
                                       "training:\n  epochs: 9\n  batch_size: 16\n")
    child = terminal(["submit", "job.yaml", "--follow", "--epochs", "4", "--label", "team=vision"], env, tmp_path)
    child.expect(r"epoch \d/4")  # the bar, drawn while the job runs
    child.expect(r"step \d+/\d+")
    child.expect("val_accuracy")
    child.expect(pexpect.EOF)
    child.close()
    shown = screen(child)
    assert child.exitstatus == 0, shown
    assert "━" in shown and "ETA" in shown and "train_loss" in shown and "val_loss" in shown  # bar, ETA and the latest metrics
    job_id = re.search(r"\((job_[0-9a-f]+)\) succeeded in \d+:\d\d", shown).group(1)
    model_id = re.search(r"model\s+(mdl_[0-9a-z]+)", shown).group(1)
    assert re.search(r"ended at step \d+ of \d+ \(after 4 epochs\): succeeded", shown)  # the log scrolled above the bar

    out, status = run_kiln(["jobs", "list", "--label", "team=vision", "--output", "json"], env, tmp_path)
    listed = json.loads(out)
    assert [j["id"] for j in listed] == [job_id] and listed[0]["spec"]["training"]["epochs"] == 4
    (tmp_path / "samples.json").write_text(json.dumps({"inputs": load_digits().images[:3].tolist()}))
    out, status = run_kiln(["predict", model_id, "samples.json", "--top-k", "2"], env, tmp_path)
    assert status == 0 and "samples.json[2]" in out and "top 2" in out, out
    out, status = run_kiln(["models", "export", model_id, "--format", "onnx", "-O", "model.onnx"], env, tmp_path)
    assert status == 0 and "wrote model.onnx" in out and (tmp_path / "model.onnx").stat().st_size > 1000, out
    assert not list(tmp_path.glob("*.part"))  # the download was renamed into place whole
    out, status = run_kiln(["jobs", "logs", job_id, "-f"], env, tmp_path)  # an ended job: its whole log, then the end
    assert status == 0 and "attempt 1 started" in out and re.search(r"ended at step \d+ of \d+ \(after 4 epochs\): succeeded", out), out
    metrics_csv, status = run_kiln(["jobs", "metrics", job_id, "--names", "val_accuracy", "-o", "csv"], env, tmp_path)
    assert status == 0 and metrics_csv.splitlines()[0].strip() == "name,step,epoch,value,time" and len(metrics_csv.splitlines()) == 5

    (tmp_path / "bad.json").write_text(json.dumps(EXPLODING))
    failing = terminal(["submit", "bad.json", "--follow"], env, tmp_path)
    failing.expect(pexpect.EOF)
    failing.close()
    assert failing.exitstatus == 1 and re.search(r"failed: .*step", screen(failing)), screen(failing)

    out, status = run_kiln(["jobs", "get", "job_not_there"], env, tmp_path)
    assert status == 1 and out.startswith("kiln: ") and "Traceback" not in out, out
    (tmp_path / "zero.json").write_text(json.dumps({**JOB, "training": {"epochs": 0}}))
    out, status = run_kiln(["submit", "zero.json"], env, tmp_path)
    assert status == 1 and "body.training.epochs" in out and "Traceback" not in out, out


def test_ctrl_c_stops_following_not_the_job_and_a_cancelled_job_exits_2(stack, tmp_path):
    key = key_of(stack)
    env = cli_env(stack, key, tmp_path)
    # Long on any machine (a warm digits MLP epoch can take 30 ms): it is cancelled long before its end.
    (tmp_path / "long.json").write_text(json.dumps({**JOB, "training": {"epochs": 1000, "batch_size": 4}}))
    child = terminal(["submit", "long.json", "--follow"], env, tmp_path)
    child.expect(r"\((job_[0-9a-f]+)\)")
    job_id = child.match.group(1)
    kiln = Client(stack.base_url, key)
    try:
        child.expect(r"step [1-9]\d*/")  # running
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130 and f"kiln jobs cancel {job_id}" in screen(child)

        assert kiln.jobs.get(job_id).state == "running"  # following stopped; the job did not
        follower = terminal(["jobs", "follow", job_id], env, tmp_path)
        out, status = run_kiln(["jobs", "cancel", job_id], env, tmp_path)
        assert status == 0 and "cancel requested" in out
        follower.expect(pexpect.EOF)
        follower.close()
        assert follower.exitstatus == 2 and "was cancelled" in screen(follower)
        assert kiln.jobs.get(job_id).state == "cancelled"
    finally:  # never leave a thousand epochs to the workers of later tests (they share the database)
        if kiln.jobs.get(job_id).state in ("queued", "running"):
            kiln.jobs.get(job_id).cancel()


def test_kiln_login_saves_a_checked_key_and_the_next_commands_use_it(stack, tmp_path):
    key = key_of(stack)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")} | {"KILN_CONFIG": str(tmp_path / "config.json")}
    out, status = run_kiln(["login", "--url", stack.base_url, "--key", "wrong"], env, tmp_path)
    assert status == 1 and "invalid API key" in out and not (tmp_path / "config.json").exists(), out  # checked before it is saved
    child = pexpect.spawn(KILN, ["login", "--url", stack.base_url], env=env, cwd=str(tmp_path), encoding="utf-8", timeout=60)
    child.expect("API key for")
    child.sendline(key)  # typed at a prompt that does not echo it
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and key not in (child.before or "")
    assert json.loads((tmp_path / "config.json").read_text()) == {"url": stack.base_url, "key": key}
    out, status = run_kiln(["datasets", "list", "-o", "json"], env, tmp_path)
    assert status == 0 and json.loads(out) == []

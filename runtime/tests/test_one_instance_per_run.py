"""One instance trains a run at a time (the run lease, docs/contracts.md section 7): two host
supervisors on two instances of the same run, against moto, with the fake trainer.

    .venv/bin/python -m pytest -q runtime/tests/test_one_instance_per_run.py
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from harness import (
    FAKE_TRAINER,
    FAST,
    Background,
    FakeImds,
    build_supervisor,
    identity,
    progress_step,
    wait_for,
)

from tuning_runtime.launchers import LocalLauncher
from tuning_runtime.lease import LeaseTimings
from tuning_runtime.ledger import parse_iso
from tuning_runtime.supervisor import Timings

SAID = re.compile(r"^\[tuning-supervisor (\S+)\] (starting the trainer|trainer exited)")


def trainer_span(root: Path) -> tuple:
    """When the trainer on that instance started and exited, from its training log (the
    ledger's attempts bill from the instance's boot, waiting included)."""
    times = {}
    for line in log_text(root).splitlines():
        found = SAID.match(line)
        if found:
            times.setdefault(found.group(2), parse_iso(found.group(1)))
    return times["starting the trainer"], times["trainer exited"]


def log_text(root: Path) -> str:
    path = root / "training.log"
    return path.read_text() if path.exists() else ""


def test_two_instances_starting_together_train_one_after_the_other(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train-40,complete")
    other = cloud.second_instance()
    with FakeImds(identity(other)) as other_imds:
        first = Background(build_supervisor(cloud, tmp_path / "a"))
        second = Background(build_supervisor(cloud, tmp_path / "b", imds_url=other_imds.url))
        assert first.join(timeout=60) == 0 and second.join(timeout=60) == 0

    ledger = cloud.ledger()
    assert {a["instanceId"] for a in ledger["attempts"]} == {cloud.instance_id, other}
    (_, first_end), (second_start, _) = sorted(
        [trainer_span(tmp_path / "a"), trainer_span(tmp_path / "b")]
    )
    assert second_start >= first_end  # never two trainers on the run at once
    waited = "b" if "holds run" in log_text(tmp_path / "b") else "a"
    holder = cloud.instance_id if waited == "b" else other
    assert f"took over the run's lease from {holder} (released at" in log_text(tmp_path / waited)
    assert ledger["status"] == "completed"


def test_a_replacement_takes_the_run_once_the_interrupted_holder_released_it(
    spot_cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train,complete")
    first = Background(build_supervisor(spot_cloud, tmp_path / "old"))
    wait_for(lambda: progress_step(tmp_path / "old") >= 3, what="training steps")
    replacement = spot_cloud.second_instance()
    with FakeImds(identity(replacement, "spot")) as imds:
        second = Background(build_supervisor(spot_cloud, tmp_path / "new", imds_url=imds.url))
        wait_for(lambda: "holds run" in log_text(tmp_path / "new"), what="the replacement to wait")
        spot_cloud.imds.interrupt()  # the old instance checkpoints, releases, shuts down
        assert first.join() == 0 and second.join() == 0

    ledger = spot_cloud.ledger()
    assert [a["instanceId"] for a in ledger["attempts"]] == [spot_cloud.instance_id, replacement]
    assert trainer_span(tmp_path / "new")[0] >= trainer_span(tmp_path / "old")[1]
    assert ledger["status"] == "completed"
    assert spot_cloud.statuses() == ["started", "interrupted", "resumed", "completed"]


def test_a_lease_left_by_a_dead_host_is_taken_when_it_expires(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    cloud.put_lease("i-0deadbeef0000000", expires_in_seconds=2)

    assert build_supervisor(cloud, tmp_path).run() == 0

    assert "took over the run's lease from i-0deadbeef0000000 (held by" in log_text(tmp_path)
    assert cloud.ledger()["status"] == "completed"
    assert cloud.lease()["released"] is True


def test_an_instance_that_cannot_get_the_run_leaves_it_alone(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    done = threading.Event()

    def live_holder() -> None:  # another instance trains and renews its lease
        while not done.is_set():
            cloud.put_lease("i-0aaaaaaaaaaaaaaaa", expires_in_seconds=2)
            done.wait(0.3)

    renewing = threading.Thread(target=live_holder, daemon=True)
    renewing.start()
    impatient = Timings(**{**FAST.__dict__, "lease": LeaseTimings(3, 0.5, 0.2, 2)})
    try:
        assert build_supervisor(cloud, tmp_path, timings=impatient).run() == 0
    finally:
        done.set()
        renewing.join()

    assert "instance i-0aaaaaaaaaaaaaaaa holds the run" in log_text(tmp_path)
    assert not cloud.has_ledger() and cloud.messages() == []
    assert cloud.group()["DesiredCapacity"] == 1  # capacity 0 could end the holder
    assert len(fakes.shutdown_calls()) == 1


def test_a_holder_that_lost_its_lease_stops_writing_at_once(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    supervisor = Background(build_supervisor(cloud, tmp_path))
    wait_for(lambda: progress_step(tmp_path) >= 3, what="training steps")

    cloud.put_lease("i-0bbbbbbbbbbbbbbbb", expires_in_seconds=60)  # another took the run
    assert supervisor.join() == 0

    ledger = cloud.ledger()
    assert ledger["status"] == "running"  # the new holder's to finish, not ours
    assert ledger["attempts"][0]["endedAt"] is not None
    assert cloud.keys("checkpoints/") == []  # killed, not asked to checkpoint
    assert cloud.group()["DesiredCapacity"] == 1 and len(fakes.shutdown_calls()) == 1
    assert cloud.lease()["holder"] == "i-0bbbbbbbbbbbbbbbb"


class SlowPull(LocalLauncher):
    """A local trainer whose 'image pull' outlasts the lease's TTL (3 s in FAST)."""

    def prepare(self, say) -> None:
        time.sleep(5)
        super().prepare(say)


def test_the_lease_is_kept_while_the_image_is_pulled(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    slow = build_supervisor(cloud, tmp_path / "a")
    slow.make_launcher = lambda settings, image_uri: SlowPull(FAKE_TRAINER)
    first = Background(slow)
    wait_for(lambda: cloud.lease() is not None, what="the first lease")
    other = cloud.second_instance()
    with FakeImds(identity(other)) as other_imds:
        second = Background(build_supervisor(cloud, tmp_path / "b", imds_url=other_imds.url))
        assert first.join(timeout=60) == 0 and second.join(timeout=60) == 0

    took_over = log_text(tmp_path / "b")
    assert f"took over the run's lease from {cloud.instance_id} (released at" in took_over
    assert trainer_span(tmp_path / "b")[0] >= trainer_span(tmp_path / "a")[1]

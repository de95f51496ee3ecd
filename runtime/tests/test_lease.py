"""The run's lease (docs/contracts.md section 7) against moto's S3: one holder at a time, handover
on release or expiry, loss detected. Through boto3 (fast); the AWS CLI backend, which the instance
uses, takes the same conditional writes (the first tests run with both)."""

from __future__ import annotations

import json

import boto3
import pytest
from harness import OUTPUTS_BUCKET, REGION, RUN_ID

from tuning_runtime.aws import AwsCli, Boto3Aws
from tuning_runtime.lease import Lease, LeaseBusyError, LeaseLostError, LeaseTimings

OUTPUT_URI = f"s3://{OUTPUTS_BUCKET}/runs/{RUN_ID}"
TIMINGS = LeaseTimings(ttl_seconds=300, renew_seconds=60, poll_seconds=15, max_wait_seconds=900)


class Clock:
    """Time that moves only when a waiting lease sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def aws(aws_env):
    boto3.client("s3").create_bucket(Bucket=OUTPUTS_BUCKET)
    return Boto3Aws(REGION)


@pytest.fixture(params=["boto3", "cli"])
def either_aws(request, aws_env):
    boto3.client("s3").create_bucket(Bucket=OUTPUTS_BUCKET)
    return Boto3Aws(REGION) if request.param == "boto3" else AwsCli(REGION)


def lease_for(aws, holder: str, clock: Clock) -> Lease:
    return Lease(aws, OUTPUT_URI, RUN_ID, holder, TIMINGS, clock=clock, sleep=clock.sleep)


def stored() -> dict:
    body = boto3.client("s3").get_object(Bucket=OUTPUTS_BUCKET, Key=f"runs/{RUN_ID}/lease.json")
    return json.loads(body["Body"].read())


def never() -> bool:
    return False


def test_the_first_instance_takes_a_free_run_at_once(either_aws):
    clock = Clock()
    lease_for(either_aws, "i-a", clock).acquire(print, never)

    assert stored()["holder"] == "i-a" and stored()["released"] is False
    assert clock.slept == []


def test_a_second_instance_waits_until_the_holder_releases(either_aws):
    clock = Clock()
    holder = lease_for(either_aws, "i-a", clock)
    holder.acquire(print, never)
    said: list = []
    waiting = lease_for(either_aws, "i-b", clock)
    # The holder finishes while the second one waits its first poll.
    waiting.sleep = lambda seconds: (clock.sleep(seconds), holder.release())

    waiting.acquire(said.append, never)

    assert stored()["holder"] == "i-b"
    assert "instance i-a holds run" in said[0]
    assert "took over the run's lease from i-a (released at" in said[1]


def test_a_holder_that_stopped_renewing_loses_the_run_at_expiry(aws):
    clock = Clock()
    lease_for(aws, "i-a", clock).acquire(print, never)  # then the host dies without a word
    started = clock.now

    lease_for(aws, "i-b", clock).acquire(print, never)

    assert stored()["holder"] == "i-b"
    assert TIMINGS.ttl_seconds <= clock.now - started < TIMINGS.ttl_seconds + TIMINGS.poll_seconds


def test_a_live_holder_that_keeps_renewing_makes_the_other_give_up(aws):
    clock = Clock()
    holder = lease_for(aws, "i-a", clock)
    holder.acquire(print, never)
    waiting = lease_for(aws, "i-b", clock)

    def renew_while_waiting(seconds: float) -> None:
        clock.sleep(seconds)
        holder.renew_if_due()

    waiting.sleep = renew_while_waiting

    with pytest.raises(LeaseBusyError, match="instance i-a holds the run"):
        waiting.acquire(print, never)
    assert stored()["holder"] == "i-a"
    assert clock.now - 1_800_000_000.0 >= TIMINGS.max_wait_seconds


def test_a_waiting_instance_gives_up_when_its_host_stops(aws):
    clock = Clock()
    lease_for(aws, "i-a", clock).acquire(print, never)

    with pytest.raises(LeaseBusyError):
        lease_for(aws, "i-b", clock).acquire(print, lambda: True)
    assert clock.slept == []


def test_a_restarted_supervisor_takes_its_own_lease_back(aws):
    clock = Clock()
    lease_for(aws, "i-a", clock).acquire(print, never)

    lease_for(aws, "i-a", clock).acquire(print, never)

    assert clock.slept == [] and stored()["holder"] == "i-a"


def test_renewing_moves_the_expiry_only_when_due(aws):
    clock = Clock()
    lease = lease_for(aws, "i-a", clock)
    lease.acquire(print, never)
    first = stored()["expiresAt"]

    clock.now += TIMINGS.renew_seconds - 1
    lease.renew_if_due()
    assert stored()["expiresAt"] == first
    clock.now += 1
    lease.renew_if_due()

    assert stored()["expiresAt"] > first


def test_a_holder_whose_lease_was_taken_learns_it_at_its_next_renewal(aws):
    clock = Clock()
    slow = lease_for(aws, "i-a", clock)
    slow.acquire(print, never)
    clock.now += TIMINGS.ttl_seconds + 1  # it did not renew in time (a long stall)
    lease_for(aws, "i-b", clock).acquire(print, never)

    with pytest.raises(LeaseLostError, match="held by i-b"):
        slow.renew_if_due()


def test_two_instances_taking_a_free_run_at_once_cannot_both_win(either_aws):
    clock = Clock()
    first, second = lease_for(either_aws, "i-a", clock), lease_for(either_aws, "i-b", clock)
    # Both read "no lease"; only the first conditional write (If-None-Match: *) lands.
    assert first._write(None) is True
    assert second._write(None) is False
    assert stored()["holder"] == "i-a"


def test_release_lets_nobody_but_the_holder_write(aws):
    clock = Clock()
    lease_for(aws, "i-a", clock).acquire(print, never)

    lease_for(aws, "i-b", clock).release()  # not the holder: nothing happens
    assert stored()["released"] is False
    lease_for(aws, "i-a", clock).release()

    assert stored()["released"] is True

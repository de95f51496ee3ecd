"""The IMDSv2 client against the repo's fake metadata service (testing/fake_imds.py)."""

from __future__ import annotations

import pytest
from testing.fake_imds import FakeImds, InstanceIdentity

from tuning_runtime.imds import Imds, ImdsError


@pytest.fixture
def imds():
    identity = InstanceIdentity("i-0123", "g6.xlarge", "eu-west-1c", life_cycle="spot")
    with FakeImds(identity) as fake:
        yield fake


def test_identity_comes_from_the_identity_document(imds):
    who = Imds(imds.url).identity()

    assert (who.instance_id, who.instance_type, who.availability_zone) == (
        "i-0123",
        "g6.xlarge",
        "eu-west-1c",
    )
    assert who.market == "spot"


def test_on_demand_life_cycle_is_the_on_demand_market():
    with FakeImds(InstanceIdentity(life_cycle="on-demand")) as fake:
        assert Imds(fake.url).identity().market == "on-demand"


def test_no_notice_until_ec2_sends_one(imds):
    client = Imds(imds.url)

    assert client.notice() is None
    imds.interrupt()
    notice = client.notice()

    assert (notice.action, notice.reason) == ("terminate", "spot-interruption")
    assert notice.time.endswith("Z")


def test_a_rebalance_recommendation_is_no_notice_but_is_reported(imds):
    client = Imds(imds.url)
    assert client.rebalance_recommended() is None
    imds.recommend_rebalance()

    assert client.notice() is None
    assert client.rebalance_recommended().endswith("Z")

    imds.interrupt(action="stop")

    assert (client.notice().action, client.notice().reason) == ("stop", "spot-interruption")


def test_token_is_fetched_once_and_reused(imds):
    client = Imds(imds.url)

    for _ in range(3):
        client.notice()

    assert [r for r in imds.requests if r[0] == "PUT"] == [("PUT", "/latest/api/token", 200)]


def test_a_refused_token_is_renewed(imds):
    client = Imds(imds.url)
    client.notice()
    client._token = "expired"

    assert client.identity().instance_id == "i-0123"
    assert ("GET", "/latest/meta-data/instance-life-cycle", 401) not in imds.requests[-3:]
    assert sum(1 for r in imds.requests if r[0] == "PUT") == 2


def test_the_endpoint_comes_from_the_sdks_variable(imds, monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url + "/")

    assert Imds().identity().instance_id == "i-0123"


def test_an_unreachable_service_is_an_imds_error():
    with pytest.raises(ImdsError, match=r"IMDS /latest/meta-data/spot/instance-action: .*refused"):
        Imds("http://127.0.0.1:9").notice()

"""Broker registrations carry every advertised listener (etcd registration
field "endpoints"); a registration without it (an older strom) is reached
at its one host:port on every listener."""

from __future__ import annotations

import json

import pytest

from strom.cluster.etcd_codec import CodecError, decode_registration, encode_registration
from strom.cluster.image import BrokerInfo, Endpoint


def test_endpoints_round_trip_and_pick_the_clients_listener() -> None:
    endpoints = (Endpoint("PLAINTEXT", "h", 9092), Endpoint("SSL", "h.example", 9093, "SSL"))
    broker = BrokerInfo(3, "h", 9092, None, 41, False, (7, 11), endpoints)
    data = json.loads(encode_registration(broker))
    assert data["version"] == 1  # an older strom reads host and port, ignoring the rest
    assert (data["host"], data["port"]) == ("h", 9092)
    decoded = decode_registration(encode_registration(broker), 41)
    assert decoded == broker
    assert decoded.endpoint("SSL") == ("h.example", 9093)
    assert decoded.endpoint("PLAINTEXT") == ("h", 9092)
    assert decoded.endpoint("INTERNAL") is None


def test_a_registration_without_endpoints_answers_every_listener() -> None:
    old = json.dumps({"version": 1, "node_id": 3, "host": "h", "port": 9092,
                      "rack": None}).encode()
    broker = decode_registration(old, 12)
    assert broker.endpoints == ()
    assert broker.endpoint("SSL") == ("h", 9092)
    assert b"endpoints" not in encode_registration(BrokerInfo(3, "h", 9092))


@pytest.mark.parametrize("bad", ["x", [["SSL", "h", "9093", "SSL"]], [["SSL", "h", 1]]])
def test_bad_endpoints_are_refused(bad: object) -> None:
    value = json.dumps({"version": 1, "node_id": 3, "host": "h", "port": 1, "rack": None,
                        "endpoints": bad}).encode()
    with pytest.raises(CodecError, match="endpoints"):
        decode_registration(value)

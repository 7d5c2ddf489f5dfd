"""DescribeClientQuotas / AlterClientQuotas against a real broker, raw
requests (confluent-kafka 2.x has no client-quota admin calls; Kafka's own
kafka-configs.sh is tested in test_quotas_kafka_tools.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.alter_client_quotas.v1 import request as alter
from kio.schema.describe_client_quotas.v1 import request as describe

from strom.errors import ErrorCode
from strom.testing import EmbeddedBroker
from tests.wire import WireClient

ALTER, DESCRIBE = 49, 48


@pytest.fixture
def quota_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path / "data") as b:
        yield b


def entry(ops: dict[str, float | None], **entity: str | None) -> alter.EntryData:
    return alter.EntryData(
        entity=tuple(alter.EntityData(entity_type=t.replace("_", "-"), entity_name=n)
                     for t, n in entity.items()),
        ops=tuple(alter.OpData(key=k, value=0.0 if v is None else v, remove=v is None)
                  for k, v in ops.items()))


def alter_quotas(client: WireClient, *entries: alter.EntryData,
                 validate_only: bool = False) -> list[tuple[int, str | None]]:
    response = client.request(ALTER, 1, alter.AlterClientQuotasRequest(
        entries=entries, validate_only=validate_only))
    return [(e.error_code, e.error_message) for e in response.entries]


def describe_quotas(client: WireClient, *components: tuple[str, int, str | None],
                    strict: bool = False) -> Any:
    return client.request(DESCRIBE, 1, describe.DescribeClientQuotasRequest(
        components=tuple(describe.ComponentData(entity_type=t, match_type=m, match=n)
                         for t, m, n in components), strict=strict))


def as_dict(response: Any) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    assert response.error_code == ErrorCode.none, response.error_message
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity):
            {v.key: v.value for v in entry.values} for entry in response.entries}


def test_alter_then_describe(quota_broker: EmbeddedBroker) -> None:
    with WireClient(quota_broker.bootstrap) as client:
        assert alter_quotas(
            client,
            entry({"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}, user="alice"),
            entry({"request_percentage": 12.5}, user=None, client_id="app"),
            entry({"controller_mutation_rate": 3.0}, client_id=None),
            entry({"connection_creation_rate": 10.0}, ip="127.0.0.1"),
        ) == [(ErrorCode.none, None)] * 4
        everything = as_dict(describe_quotas(client))
        assert everything == {
            (("user", "alice"),): {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
            (("client-id", "app"), ("user", None)): {"request_percentage": 12.5},
            (("client-id", None),): {"controller_mutation_rate": 3.0},
            (("ip", "127.0.0.1"),): {"connection_creation_rate": 10.0},
        }
        assert list(as_dict(describe_quotas(client, ("user", 0, "alice")))) == [
            (("user", "alice"),)]
        assert list(as_dict(describe_quotas(client, ("user", 1, None)))) == [
            (("client-id", "app"), ("user", None))]
        # strict: only entities with exactly the filter's types.
        assert as_dict(describe_quotas(client, ("user", 1, None), strict=True)) == {}
        assert list(as_dict(describe_quotas(client, ("client-id", 2, None)))) == [
            (("client-id", "app"), ("user", None)), (("client-id", None),)]
        # Removing the last key removes the entity; removing a missing key is fine.
        assert alter_quotas(client, entry({"controller_mutation_rate": None,
                                           "producer_byte_rate": None}, client_id=None)
                            ) == [(ErrorCode.none, None)]
        assert (("client-id", None),) not in as_dict(describe_quotas(client))
    # Kept in cluster metadata across a restart.
    quota_broker.restart()
    with WireClient(quota_broker.bootstrap) as client:
        assert as_dict(describe_quotas(client, ("user", 0, "alice"))) == {
            (("user", "alice"),): {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}}


def test_bad_alterations_fail_their_entry_only(quota_broker: EmbeddedBroker) -> None:
    with WireClient(quota_broker.bootstrap) as client:
        results = alter_quotas(
            client,
            entry({"producer_byte_rate": 100.0}, user="ok"),
            entry({"bogus_rate": 1.0}, user="bob"),
            entry({"producer_byte_rate": -5.0}, user="bob"),
            entry({"producer_byte_rate": 1.5}, user="bob"),
            entry({"producer_byte_rate": 5.0}, group="g"),
            entry({"producer_byte_rate": 5.0}),
            entry({"connection_creation_rate": 5.0}, ip="1.2.3.4", user="bob"),
            entry({"producer_byte_rate": 5.0}, ip="1.2.3.4"),
            entry({"producer_byte_rate": 5.0}, user=""),
            entry({"consumer_byte_rate": 7.0, "bogus": 1.0}, client_id="half"),
        )
        codes = [code for code, _ in results]
        assert codes == [ErrorCode.none] + [ErrorCode.invalid_request] * 9
        messages = [message for _, message in results]
        assert messages[1] == "Invalid configuration key bogus_rate"
        assert messages[2] == "Quota producer_byte_rate must be greater than 0"
        assert messages[3] == "producer_byte_rate cannot be a fractional value."
        assert messages[5] == "Invalid empty client quota entity"
        # A failed entry changes none of its keys.
        assert as_dict(describe_quotas(client)) == {
            (("user", "ok"),): {"producer_byte_rate": 100.0}}
        # validate_only checks and changes nothing.
        assert alter_quotas(client, entry({"producer_byte_rate": 5.0}, user="v"),
                            validate_only=True) == [(ErrorCode.none, None)]
        assert as_dict(describe_quotas(client, ("user", 0, "v"))) == {}


@pytest.mark.parametrize(("components", "code"), [
    ([("user", 0, None)], ErrorCode.invalid_request),
    ([("user", 1, "x")], ErrorCode.invalid_request),
    ([("user", 2, "x")], ErrorCode.invalid_request),
    ([("user", 9, None)], ErrorCode.invalid_request),
    ([("user", 0, "a"), ("user", 0, "b")], ErrorCode.invalid_request),
    ([("", 0, "a")], ErrorCode.invalid_request),
    ([("group", 0, "a")], ErrorCode.unsupported_version),
    ([("ip", 2, None), ("client-id", 2, None)], ErrorCode.invalid_request),
])
def test_bad_filters(broker: EmbeddedBroker, components: list[tuple[str, int, str | None]],
                     code: ErrorCode) -> None:
    with WireClient(broker.bootstrap) as client:
        response = describe_quotas(client, *components)
        assert response.error_code == code
        assert response.entries is None
        # The connection lives on.
        assert describe_quotas(client).error_code == ErrorCode.none

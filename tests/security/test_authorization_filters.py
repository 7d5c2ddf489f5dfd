"""What a principal sees, with Kafka's StandardAuthorizer on: resources it may
not describe are left out of listings (Metadata, ListGroups, OffsetFetch of
every topic, ListTransactions, DescribeTransactions' topics), KIP-430
authorized operations are what the ACLs allow, and a forwarded request
(KIP-590 Envelope) is authorized as the principal the Envelope carries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from strom.broker.envelope_data import principal_bytes, principal_data
from strom.broker.forwarding import BROKER_CLIENT_ID
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, request_class, response_class
from strom.protocol.client_frames import decode_response, encode_request
from strom.protocol.messages import build
from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType
from strom.security.principal import ANONYMOUS, KafkaPrincipal, user
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.security.authz_broker import acl, secured_broker, with_acls

T, G, C, X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER, \
    ResourceType.TRANSACTIONAL_ID
Op = AclOperation
OMITTED = -(2**31)


def bits(*ops: AclOperation) -> int:
    return sum(1 << op for op in ops)


@pytest.fixture(scope="module")
def secured() -> Iterator[EmbeddedBroker]:
    with secured_broker({"auto.create.topics.enable": "false"}) as broker:
        with_acls(broker, [(C, CLUSTER_NAME, Op.CREATE), (G, "g1", Op.READ),
                           (G, "g2", Op.READ), (T, "a", Op.READ), (T, "b", Op.READ),
                           (X, "x1", Op.WRITE), (X, "x2", Op.WRITE)])
        with RawClient(broker.bootstrap) as client:
            made = client.send(ApiKey.CREATE_TOPICS, 5, {"topics": [
                {"name": n, "num_partitions": 1, "replication_factor": 1, "assignments": [],
                 "configs": []} for n in ("a", "b")], "timeout": 5000})
            assert [t.error_code for t in made.topics] == [ErrorCode.none] * 2
            for group in ("g1", "g2"):
                until_done(lambda g=group: _codes(client, ApiKey.FIND_COORDINATOR, 4, {  # type: ignore[misc]
                    "key_type": 0, "coordinator_keys": [g]}))
                until_done(lambda g=group: _codes(client, ApiKey.OFFSET_COMMIT, 8, {  # type: ignore[misc]
                    "group_id": g, "generation_id_or_member_epoch": -1, "member_id": "",
                    "topics": [{"name": n, "partitions": [
                        {"partition_index": 0, "committed_offset": 0,
                         "committed_metadata": None}]} for n in ("a", "b")]}))
            for txn in ("x1", "x2"):
                until_done(lambda x=txn: _codes(client, ApiKey.FIND_COORDINATOR, 4, {  # type: ignore[misc]
                    "key_type": 1, "coordinator_keys": [x]}))
                until_done(lambda x=txn: _codes(client, ApiKey.INIT_PRODUCER_ID, 4, {  # type: ignore[misc]
                    "transactional_id": x, "transaction_timeout": 60000}))
        with_acls(broker, [])
        yield broker


def _codes(client: RawClient, api: int, version: int, body: dict[str, Any]) -> set[int]:
    """Every error code in the response (top level, per coordinator, per partition)."""
    from strom.broker.forwarding import error_codes
    return error_codes(client.send(api, version, body))


def until_done(attempt: Callable[[], set[int]]) -> None:
    """Retry while the coordinator loads (it starts on first use), bounded."""
    deadline = time.monotonic() + 20
    while (codes := attempt()) != {0}:
        assert codes <= RETRIABLE and time.monotonic() < deadline, codes
        time.sleep(0.05)


RETRIABLE = {ErrorCode.not_coordinator, ErrorCode.coordinator_not_available,
             ErrorCode.coordinator_load_in_progress}


def send(broker: EmbeddedBroker, api: int, version: int, body: dict[str, Any]) -> Any:
    with RawClient(broker.bootstrap) as client:
        return client.send(api, version, body)


def metadata(broker: EmbeddedBroker, topics: list[str] | None, version: int = 10) -> Any:
    return send(broker, ApiKey.METADATA, version, {
        "topics": None if topics is None else [{"name": n, "topic_id": None} for n in topics],
        "allow_auto_topic_creation": False, "include_topic_authorized_operations": True,
        "include_cluster_authorized_operations": True})


def test_metadata_hides_topics_without_describe(secured: EmbeddedBroker) -> None:
    with_acls(secured, [(T, "a", Op.DESCRIBE)])
    assert [t.name for t in metadata(secured, None).topics] == ["a"]
    named = {t.name: t.error_code for t in metadata(secured, ["a", "b", "nope"]).topics}
    # b exists, nope does not: both answer alike, so existence is not disclosed.
    assert named == {"a": ErrorCode.none, "b": ErrorCode.topic_authorization_failed,
                     "nope": ErrorCode.topic_authorization_failed}


def test_metadata_auto_create_needs_create(secured: EmbeddedBroker) -> None:
    with_acls(secured, [(T, "fresh", Op.DESCRIBE)])
    asked = send(secured, ApiKey.METADATA, 10, {
        "topics": [{"name": "fresh", "topic_id": None}], "allow_auto_topic_creation": True,
        "include_topic_authorized_operations": False,
        "include_cluster_authorized_operations": False})
    # auto.create.topics.enable is off here: UNKNOWN, but never denied for DESCRIBE.
    assert asked.topics[0].error_code == ErrorCode.unknown_topic_or_partition


def test_kip430_topic_and_cluster_operations(secured: EmbeddedBroker) -> None:
    with_acls(secured, [(T, "a", Op.READ), (T, "a", Op.ALTER_CONFIGS)])
    answer = metadata(secured, ["a"])
    # READ implies DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS (Kafka's rules).
    assert answer.topics[0].topic_authorized_operations == bits(
        Op.READ, Op.DESCRIBE, Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS)
    assert answer.cluster_authorized_operations == 0  # no DESCRIBE on the cluster
    with_acls(secured, [(T, "a", Op.DESCRIBE), (C, CLUSTER_NAME, Op.ALTER)])
    answer = metadata(secured, ["a"])
    assert answer.topics[0].topic_authorized_operations == bits(Op.DESCRIBE)
    # ALTER implies DESCRIBE on the cluster.
    assert answer.cluster_authorized_operations == bits(Op.ALTER, Op.DESCRIBE)
    cluster = send(secured, ApiKey.DESCRIBE_CLUSTER, 1,
                   {"include_cluster_authorized_operations": True})
    assert cluster.cluster_authorized_operations == bits(Op.ALTER, Op.DESCRIBE)
    cluster = send(secured, ApiKey.DESCRIBE_CLUSTER, 1,
                   {"include_cluster_authorized_operations": False})
    assert cluster.cluster_authorized_operations == OMITTED


def test_kip430_group_operations(secured: EmbeddedBroker) -> None:
    with_acls(secured, [(G, "g1", Op.READ)])
    described = send(secured, ApiKey.DESCRIBE_GROUPS, 5,
                     {"groups": ["g1"], "include_authorized_operations": True})
    assert described.groups[0].error_code == ErrorCode.none
    assert described.groups[0].authorized_operations == bits(Op.READ, Op.DESCRIBE)
    described = send(secured, ApiKey.DESCRIBE_GROUPS, 5,
                     {"groups": ["g1"], "include_authorized_operations": False})
    assert described.groups[0].authorized_operations == OMITTED


def test_kip430_without_an_authorizer_reports_every_operation() -> None:
    with EmbeddedBroker() as broker:
        with RawClient(broker.bootstrap) as client:
            client.send(ApiKey.CREATE_TOPICS, 5, {"topics": [
                {"name": "a", "num_partitions": 1, "replication_factor": 1,
                 "assignments": [], "configs": []}], "timeout": 5000})
        answer = metadata(broker, ["a"])
        assert answer.topics[0].topic_authorized_operations == bits(
            Op.READ, Op.WRITE, Op.CREATE, Op.DELETE, Op.ALTER, Op.DESCRIBE,
            Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS)
        assert answer.cluster_authorized_operations == bits(
            Op.CREATE, Op.CLUSTER_ACTION, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS,
            Op.IDEMPOTENT_WRITE, Op.ALTER, Op.DESCRIBE)


def test_list_groups_shows_groups_it_may_describe(secured: EmbeddedBroker) -> None:
    def listed() -> list[str]:
        answer = send(secured, ApiKey.LIST_GROUPS, 4, {"states_filter": []})
        return sorted(g.group_id for g in answer.groups)

    with_acls(secured, [])
    assert listed() == []
    with_acls(secured, [(G, "g1", Op.DESCRIBE)])
    assert listed() == ["g1"]
    with_acls(secured, [(C, CLUSTER_NAME, Op.DESCRIBE)])
    assert listed() == ["g1", "g2"]


def test_offset_fetch_of_every_topic_leaves_out_undescribable_ones(
        secured: EmbeddedBroker) -> None:
    with_acls(secured, [(G, "g1", Op.DESCRIBE), (T, "a", Op.DESCRIBE)])
    answer = send(secured, ApiKey.OFFSET_FETCH, 8,
                  {"groups": [{"group_id": "g1", "topics": None}], "require_stable": False})
    assert [t.name for t in answer.groups[0].topics] == ["a"]
    named = send(secured, ApiKey.OFFSET_FETCH, 8, {"groups": [{"group_id": "g1", "topics": [
        {"name": "a", "partition_indexes": [0]}, {"name": "b", "partition_indexes": [0]}]}],
        "require_stable": False})
    codes = {t.name: t.partitions[0].error_code for t in named.groups[0].topics}
    assert codes == {"a": ErrorCode.none, "b": ErrorCode.topic_authorization_failed}


def test_offset_delete_answers_unreadable_topics(secured: EmbeddedBroker) -> None:
    with_acls(secured, [(G, "g2", Op.DELETE), (T, "a", Op.READ)])
    answer = send(secured, ApiKey.OFFSET_DELETE, 0, {"group_id": "g2", "topics": [
        {"name": n, "partitions": [{"partition_index": 0}]} for n in ("a", "b")]})
    codes = {t.name: t.partitions[0].error_code for t in answer.topics}
    assert codes == {"a": ErrorCode.none, "b": ErrorCode.topic_authorization_failed}


def test_list_transactions_shows_ids_it_may_describe(secured: EmbeddedBroker) -> None:
    def listed() -> list[str]:
        answer = send(secured, ApiKey.LIST_TRANSACTIONS, 1,
                      {"state_filters": [], "producer_id_filters": [], "duration_filter": -1})
        return sorted(s.transactional_id for s in answer.transaction_states)

    with_acls(secured, [(X, "x2", Op.DESCRIBE)])
    assert listed() == ["x2"]
    with_acls(secured, [(X, "x1", Op.WRITE), (X, "x2", Op.DESCRIBE)])  # WRITE implies DESCRIBE
    assert listed() == ["x1", "x2"]


def _forwarded_create(broker: EmbeddedBroker, principal: KafkaPrincipal) -> int:
    """A CreateTopics (validate only) inside an Envelope carrying `principal`,
    sent as strom's brokers send it; the embedded result's code."""
    inner = build(request_class(ApiKey.CREATE_TOPICS, 5), {"topics": [
        {"name": "via-envelope", "num_partitions": 1, "replication_factor": 1,
         "assignments": [], "configs": []}], "timeout": 5000, "validate_only": True})
    with RawClient(broker.bootstrap, client_id=f"{BROKER_CLIENT_ID}1") as client:
        envelope = client.send(ApiKey.ENVELOPE, 0, {
            "request_data": encode_request(inner, 7, "admin-client")[4:],
            "request_principal": principal_bytes(principal_data(principal)),
            "client_host_address": bytes([127, 0, 0, 1])})
    assert envelope.error_code == ErrorCode.none
    response: Any
    _, response = decode_response(envelope.response_data,
                                  response_class(ApiKey.CREATE_TOPICS, 5))
    return int(response.topics[0].error_code)


def test_envelope_inner_request_is_authorized_as_the_carried_principal(
        secured: EmbeddedBroker) -> None:
    # The forwarding broker (here ANONYMOUS) has CLUSTER_ACTION; only alice may create.
    with_acls(secured, [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)],
              [acl(T, "via-envelope", Op.CREATE, principal="User:alice")])
    assert _forwarded_create(secured, user("alice")) == ErrorCode.none
    assert _forwarded_create(secured, ANONYMOUS) == ErrorCode.topic_authorization_failed


def _heartbeat_until_assigned(broker: EmbeddedBroker, group: str,
                              subscription: dict[str, Any]) -> Any:
    """ConsumerGroupHeartbeat (KIP-848) until the member has an assignment, bounded."""
    member_id, epoch = uuid.uuid4().hex, 0  # v1: the client names itself
    deadline = time.monotonic() + 20
    with RawClient(broker.bootstrap) as client:
        until_done(lambda: _codes(client, ApiKey.FIND_COORDINATOR, 4, {
            "key_type": 0, "coordinator_keys": [group]}))
        while True:
            answer = client.send(ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, {
                "group_id": group, "member_id": member_id, "member_epoch": epoch,
                "rebalance_timeout": 5000, "topic_partitions": [],
                "subscribed_topic_names": None, "subscribed_topic_regex": None,
                **subscription})
            if answer.error_code in RETRIABLE:
                assert time.monotonic() < deadline
                time.sleep(0.05)
                continue
            assert answer.error_code == ErrorCode.none, answer
            member_id, epoch = answer.member_id, answer.member_epoch
            if answer.assignment is not None and answer.assignment.topic_partitions:
                return answer.assignment
            assert time.monotonic() < deadline, "never assigned"
            time.sleep(0.05)


def test_regex_subscription_resolves_only_describable_topics(secured: EmbeddedBroker) -> None:
    # KAFKA-18813: the regex is resolved with the ACLs of the member refreshing it.
    with_acls(secured, [(G, "k1", Op.READ), (T, "a", Op.DESCRIBE)])
    assignment = _heartbeat_until_assigned(secured, "k1", {"subscribed_topic_regex": "a|b"})
    ids = {t.topic_id for t in assignment.topic_partitions}
    assert ids == {secured.services.image.topics["a"].topic_id}


def test_consumer_group_describe_refuses_groups_with_undescribable_topics(
        secured: EmbeddedBroker) -> None:
    with_acls(secured, [(G, "k2", Op.READ), (T, "b", Op.DESCRIBE)])
    _heartbeat_until_assigned(secured, "k2", {"subscribed_topic_names": ["b"]})

    def described() -> int:
        answer = send(secured, ApiKey.CONSUMER_GROUP_DESCRIBE, 0,
                      {"group_ids": ["k2"], "include_authorized_operations": False})
        return int(answer.groups[0].error_code)

    assert described() == ErrorCode.none
    with_acls(secured, [(G, "k2", Op.DESCRIBE)])
    assert described() == ErrorCode.topic_authorization_failed


def test_metadata_auto_creates_only_with_create() -> None:
    with secured_broker({"auto.create.topics.enable": "true"}) as broker:
        def ask(name: str) -> int:
            answer = send(broker, ApiKey.METADATA, 10, {
                "topics": [{"name": name, "topic_id": None}],
                "allow_auto_topic_creation": True,
                "include_topic_authorized_operations": False,
                "include_cluster_authorized_operations": False})
            return int(answer.topics[0].error_code)

        with_acls(broker, [(T, "auto-a", Op.DESCRIBE), (T, "auto-b", Op.DESCRIBE),
                           (T, "auto-b", Op.CREATE)])
        assert ask("auto-a") == ErrorCode.topic_authorization_failed
        assert "auto-a" not in broker.services.image.topics
        assert ask("auto-b") in (ErrorCode.none, ErrorCode.leader_not_available)
        assert "auto-b" in broker.services.image.topics
        # CREATE on the cluster lets every named topic be made.
        with_acls(broker, [(T, "auto-a", Op.DESCRIBE), (C, CLUSTER_NAME, Op.CREATE)])
        assert ask("auto-a") in (ErrorCode.none, ErrorCode.leader_not_available)


def test_unauthorized_acks0_produce_closes_the_connection(secured: EmbeddedBroker) -> None:
    from strom.protocol.records import RecordSpec, build_batch

    with_acls(secured, [])
    with RawClient(secured.bootstrap) as client:
        client.send_only(ApiKey.PRODUCE, 9, {
            "transactional_id": None, "acks": 0, "timeout": 5000, "topic_data": [
                {"name": "a", "partition_data": [
                    {"index": 0, "records": build_batch([RecordSpec(value=b"v")])}]}]})
        # acks=0 has no response: the client learns of the failure by the close.
        with pytest.raises(ConnectionError):
            client.receive_frame()

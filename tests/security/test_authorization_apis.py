"""Every API strom serves, asked by a principal without the permission Kafka
requires, answers Kafka's code; with exactly that permission it does not.

Until SASL is on, a PLAINTEXT client is User:ANONYMOUS: the broker runs
StandardAuthorizer with `super.users` not naming it, and each case grants
ANONYMOUS the ACLs it needs (AclRecords committed through the metadata store),
then takes them away. Requests are raw kio requests over real sockets.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from strom.broker.authorization import REQUIREMENTS, api_name
from strom.broker.envelope_data import principal_bytes, principal_data
from strom.broker.forwarding import BROKER_CLIENT_ID
from strom.broker.router import REGISTRY, load_handlers
from strom.coordinator.share import coordinator_key
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, request_class
from strom.protocol.client_frames import encode_request
from strom.protocol.messages import build
from strom.protocol.records import RecordSpec, build_batch
from strom.security.acl_types import (
    CLUSTER_NAME,
    AclOperation,
    ResourceType,
)
from strom.security.principal import ANONYMOUS, KafkaPrincipal
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.security.authz_broker import Grant, secured_broker, with_acls

T, G, C, X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER, \
    ResourceType.TRANSACTIONAL_ID
Op = AclOperation
TOPIC, GROUP, TXN = "authz-t", "authz-g", "authz-x"
SHARE_GROUP = "authz-share"
SHARE_TOPIC_ID = uuid.UUID("0f0e0d0c-0b0a-0908-0706-050403020100")

TOPIC_DENIED = ErrorCode.topic_authorization_failed
GROUP_DENIED = ErrorCode.group_authorization_failed
CLUSTER_DENIED = ErrorCode.cluster_authorization_failed
TXN_DENIED = ErrorCode.transactional_id_authorization_failed


@dataclass
class Case:
    api: int
    version: int
    body: dict[str, Any]
    #: The codes of the response that the check is about.
    codes: Callable[[Any], list[int]]
    denied: ErrorCode
    #: With these the check passes (the denial code is gone).
    grants: list[Grant] = field(default_factory=list)
    #: Granted in both runs (the other checks the request needs).
    base: list[Grant] = field(default_factory=list)
    name: str = ""
    #: The client id to send (brokers' own requests, e.g. Envelope).
    client_id: str = "raw-test-client"
    #: Read the codes from the response frame (after the correlation id)
    #: where kio cannot decode Kafka's answer.
    raw: Callable[[bytes], list[int]] | None = None
    #: Versions below this carry no code for the denial (Kafka answers
    #: nothing there: DescribeLogDirs v0-2 an empty result, as its clients expect).
    coded_from: int = 0


def top(r: Any) -> list[int]:
    return [r.error_code]


def per_partition(topics: str, parts: str) -> Callable[[Any], list[int]]:
    return lambda r: [p.error_code for t in getattr(r, topics) for p in getattr(t, parts)]


def _batch(*, transactional: bool = False) -> bytes:
    return build_batch([RecordSpec(value=b"v")], producer_id=7 if transactional else -1,
                       producer_epoch=0 if transactional else -1,
                       base_sequence=0 if transactional else -1, transactional=transactional)


def _produce(transactional_id: str | None, records: bytes) -> dict[str, Any]:
    return {"transactional_id": transactional_id, "acks": 1, "timeout": 5000, "topic_data": [
        {"name": TOPIC, "partition_data": [{"index": 0, "records": records}]}]}


def _envelope_of(api: int, version: int, body: dict[str, Any],
                 principal: KafkaPrincipal = ANONYMOUS) -> dict[str, Any]:
    """An Envelope as strom's brokers send it (forwarding.py), carrying `principal`."""
    inner = encode_request(build(request_class(api, version), body), 99, "raw-test-client")[4:]
    return {"request_data": inner, "request_principal": principal_bytes(principal_data(
        principal)), "client_host_address": bytes([127, 0, 0, 1])}


def _first_state_code(frame: bytes) -> list[int]:
    # DescribeTransactions v0 (flexible): header tags, throttle (4), compact
    # count (1), then the first state's error code. kio's reader refuses the
    # -1 start time of an error entry.
    return [struct.unpack_from(">h", frame, 1 + 4 + 1)[0]]


def cases() -> list[Case]:
    tp = [{"name": TOPIC, "partitions": [0]}]
    return [
        Case(ApiKey.PRODUCE, 9, _produce(None, _batch()),
             per_partition("responses", "partition_responses"), TOPIC_DENIED,
             [(T, TOPIC, Op.WRITE)]),
        Case(ApiKey.PRODUCE, 9, _produce(TXN, _batch(transactional=True)),
             per_partition("responses", "partition_responses"), TXN_DENIED,
             [(X, TXN, Op.WRITE)], [(T, TOPIC, Op.WRITE)], name="transactional"),
        Case(ApiKey.PRODUCE, 9, _produce(None, _batch(transactional=True)),
             per_partition("responses", "partition_responses"), TXN_DENIED,
             [], [(T, TOPIC, Op.WRITE), (X, TXN, Op.WRITE)], name="transactional-no-id"),
        Case(ApiKey.ENVELOPE, 0, _envelope_of(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                                              {"timeout": 5000, "topics": None}),
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)],
             client_id=f"{BROKER_CLIENT_ID}1"),
        Case(ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [TXN]}, top, TXN_DENIED,
             [(X, TXN, Op.DESCRIBE)], raw=_first_state_code),
        Case(ApiKey.FETCH, 12, {"replica_id": -1, "max_wait": 0, "min_bytes": 0,
                                "max_bytes": 1024, "topics": [{"topic": TOPIC, "partitions": [
                                    {"partition": 0, "fetch_offset": 0,
                                     "partition_max_bytes": 1024}]}],
                                "forgotten_topics_data": []},
             per_partition("responses", "partitions"), TOPIC_DENIED, [(T, TOPIC, Op.READ)]),
        Case(ApiKey.FETCH, 12, {"replica_id": 1, "max_wait": 0, "min_bytes": 0,
                                "max_bytes": 1024, "topics": [{"topic": TOPIC, "partitions": [
                                    {"partition": 0, "fetch_offset": 0,
                                     "partition_max_bytes": 1024}]}],
                                "forgotten_topics_data": []},
             per_partition("responses", "partitions"), TOPIC_DENIED,
             [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)], name="follower"),
        Case(ApiKey.LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0, "timestamp": -1}]}]},
             per_partition("topics", "partitions"), TOPIC_DENIED, [(T, TOPIC, Op.DESCRIBE)]),
        Case(ApiKey.METADATA, 12, {"topics": [{"name": TOPIC, "topic_id": None}],
                                   "allow_auto_topic_creation": False,
                                   "include_topic_authorized_operations": False},
             lambda r: [t.error_code for t in r.topics], TOPIC_DENIED,
             [(T, TOPIC, Op.DESCRIBE)]),
        Case(ApiKey.OFFSET_COMMIT, 8, {"group_id": GROUP, "generation_id_or_member_epoch": -1,
                                       "member_id": "", "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 0,
                            "committed_metadata": None}]}]},
             per_partition("topics", "partitions"), GROUP_DENIED, [(G, GROUP, Op.READ)],
             [(T, TOPIC, Op.READ)]),
        Case(ApiKey.OFFSET_COMMIT, 8, {"group_id": GROUP, "generation_id_or_member_epoch": -1,
                                       "member_id": "", "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 0,
                            "committed_metadata": None}]}]},
             per_partition("topics", "partitions"), TOPIC_DENIED, [(T, TOPIC, Op.READ)],
             [(G, GROUP, Op.READ)], name="topic"),
        Case(ApiKey.OFFSET_FETCH, 8, {"groups": [{"group_id": GROUP, "topics": [
            {"name": TOPIC, "partition_indexes": [0]}]}]},
             lambda r: [g.error_code for g in r.groups], GROUP_DENIED,
             [(G, GROUP, Op.DESCRIBE)]),
        Case(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [GROUP]},
             lambda r: [c.error_code for c in r.coordinators], GROUP_DENIED,
             [(G, GROUP, Op.DESCRIBE)]),
        Case(ApiKey.FIND_COORDINATOR, 4, {"key_type": 1, "coordinator_keys": [TXN]},
             lambda r: [c.error_code for c in r.coordinators], TXN_DENIED,
             [(X, TXN, Op.DESCRIBE)], name="txn"),
        Case(ApiKey.JOIN_GROUP, 5, {"group_id": GROUP, "session_timeout": 10000,
                                    "rebalance_timeout": 10000, "member_id": "",
                                    "protocol_type": "consumer", "protocols": []},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)]),
        Case(ApiKey.HEARTBEAT, 3, {"group_id": GROUP, "generation_id": 1, "member_id": "m"},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)]),
        Case(ApiKey.LEAVE_GROUP, 3, {"group_id": GROUP, "members": [{"member_id": "m"}]},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)]),
        Case(ApiKey.SYNC_GROUP, 3, {"group_id": GROUP, "generation_id": 1, "member_id": "m",
                                    "assignments": []},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)]),
        Case(ApiKey.DESCRIBE_GROUPS, 5, {"groups": [GROUP], "include_authorized_operations": True},
             lambda r: [g.error_code for g in r.groups], GROUP_DENIED,
             [(G, GROUP, Op.DESCRIBE)]),
        Case(ApiKey.DELETE_GROUPS, 2, {"groups_names": [GROUP]},
             lambda r: [g.error_code for g in r.results], GROUP_DENIED,
             [(G, GROUP, Op.DELETE)]),
        Case(ApiKey.CREATE_TOPICS, 5, {"topics": [
            {"name": "authz-new", "num_partitions": 1, "replication_factor": 1,
             "assignments": [], "configs": []}], "timeout": 5000, "validate_only": True},
             lambda r: [t.error_code for t in r.topics], TOPIC_DENIED,
             [(T, "authz-new", Op.CREATE)]),
        Case(ApiKey.DELETE_TOPICS, 5, {"topic_names": ["authz-missing"], "timeout": 5000},
             lambda r: [t.error_code for t in r.responses], TOPIC_DENIED,
             [(T, "authz-missing", Op.DESCRIBE)], name="describe"),
        Case(ApiKey.DELETE_RECORDS, 1, {"topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0, "offset": 0}]}],
            "timeout": 5000},
             per_partition("topics", "partitions"), TOPIC_DENIED, [(T, TOPIC, Op.DELETE)]),
        Case(ApiKey.INIT_PRODUCER_ID, 4, {"transactional_id": TXN, "transaction_timeout": 60000},
             top, TXN_DENIED, [(X, TXN, Op.WRITE)]),
        Case(ApiKey.INIT_PRODUCER_ID, 4, {"transactional_id": None,
                                          "transaction_timeout": 60000},
             top, CLUSTER_DENIED, [(T, "any-topic", Op.WRITE)], name="idempotent"),
        Case(ApiKey.OFFSET_FOR_LEADER_EPOCH, 3, {"replica_id": -1, "topics": [
            {"topic": TOPIC, "partitions": [{"partition": 0, "leader_epoch": 0}]}]},
             per_partition("topics", "partitions"), TOPIC_DENIED, [(T, TOPIC, Op.DESCRIBE)]),
        Case(ApiKey.ADD_PARTITIONS_TO_TXN, 3, {"v3_and_below_transactional_id": TXN,
                                               "v3_and_below_producer_id": 1,
                                               "v3_and_below_producer_epoch": 0,
                                               "v3_and_below_topics": tp},
             lambda r: [p.partition_error_code for t in r.results_by_topic_v3_and_below
                        for p in t.results_by_partition], TXN_DENIED, [(X, TXN, Op.WRITE)]),
        Case(ApiKey.ADD_PARTITIONS_TO_TXN, 3, {"v3_and_below_transactional_id": TXN,
                                               "v3_and_below_producer_id": 1,
                                               "v3_and_below_producer_epoch": 0,
                                               "v3_and_below_topics": tp},
             lambda r: [p.partition_error_code for t in r.results_by_topic_v3_and_below
                        for p in t.results_by_partition], TOPIC_DENIED,
             [(T, TOPIC, Op.WRITE)], [(X, TXN, Op.WRITE)], name="topic"),
        Case(ApiKey.ADD_PARTITIONS_TO_TXN, 4, {"transactions": [
            {"transactional_id": TXN, "producer_id": 1, "producer_epoch": 0,
             "verify_only": True, "topics": tp}]},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)], name="broker"),
        Case(ApiKey.ADD_OFFSETS_TO_TXN, 3, {"transactional_id": TXN, "producer_id": 1,
                                            "producer_epoch": 0, "group_id": GROUP},
             top, TXN_DENIED, [(X, TXN, Op.WRITE)], [(G, GROUP, Op.READ)]),
        Case(ApiKey.ADD_OFFSETS_TO_TXN, 3, {"transactional_id": TXN, "producer_id": 1,
                                            "producer_epoch": 0, "group_id": GROUP},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)], [(X, TXN, Op.WRITE)], name="group"),
        Case(ApiKey.END_TXN, 3, {"transactional_id": TXN, "producer_id": 1,
                                 "producer_epoch": 0, "committed": True},
             top, TXN_DENIED, [(X, TXN, Op.WRITE)]),
        Case(ApiKey.WRITE_TXN_MARKERS, 1, {"markers": [
            {"producer_id": 1, "producer_epoch": 0, "transaction_result": False,
             "topics": [{"name": TOPIC, "partition_indexes": [0]}], "coordinator_epoch": 0}]},
             lambda r: [p.error_code for m in r.markers for t in m.topics
                        for p in t.partitions], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)]),
        Case(ApiKey.TXN_OFFSET_COMMIT, 3, {"transactional_id": TXN, "group_id": GROUP,
                                           "producer_id": 1, "producer_epoch": 0,
                                           "topics": [{"name": TOPIC, "partitions": [
                                               {"partition_index": 0,
                                                "committed_offset": 0,
                                                "committed_metadata": None}]}]},
             per_partition("topics", "partitions"), TXN_DENIED, [(X, TXN, Op.WRITE)],
             [(G, GROUP, Op.READ), (T, TOPIC, Op.READ)]),
        Case(ApiKey.TXN_OFFSET_COMMIT, 3, {"transactional_id": TXN, "group_id": GROUP,
                                           "producer_id": 1, "producer_epoch": 0,
                                           "topics": [{"name": TOPIC, "partitions": [
                                               {"partition_index": 0,
                                                "committed_offset": 0,
                                                "committed_metadata": None}]}]},
             per_partition("topics", "partitions"), GROUP_DENIED, [(G, GROUP, Op.READ)],
             [(X, TXN, Op.WRITE), (T, TOPIC, Op.READ)], name="group"),
        Case(ApiKey.DESCRIBE_CONFIGS, 4, {"resources": [
            {"resource_type": 2, "resource_name": TOPIC, "configuration_keys": None}]},
             lambda r: [x.error_code for x in r.results], TOPIC_DENIED,
             [(T, TOPIC, Op.DESCRIBE_CONFIGS)]),
        Case(ApiKey.DESCRIBE_CONFIGS, 4, {"resources": [
            {"resource_type": 4, "resource_name": "", "configuration_keys": None}]},
             lambda r: [x.error_code for x in r.results], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.DESCRIBE_CONFIGS)], name="broker"),
        Case(ApiKey.ALTER_CONFIGS, 2, {"resources": [
            {"resource_type": 2, "resource_name": TOPIC, "configs": []}],
            "validate_only": True},
             lambda r: [x.error_code for x in r.responses], TOPIC_DENIED,
             [(T, TOPIC, Op.ALTER_CONFIGS)]),
        Case(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {"resources": [
            {"resource_type": 4, "resource_name": "", "configs": []}], "validate_only": True},
             lambda r: [x.error_code for x in r.responses], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.ALTER_CONFIGS)]),
        Case(ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": None}, top, CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.DESCRIBE)], coded_from=3),
        Case(ApiKey.CREATE_PARTITIONS, 3, {"topics": [
            {"name": TOPIC, "count": 5, "assignments": None}], "timeout": 5000,
            "validate_only": True},
             lambda r: [x.error_code for x in r.results], TOPIC_DENIED,
             [(T, TOPIC, Op.ALTER)]),
        Case(ApiKey.ELECT_LEADERS, 2, {"election_type": 0, "timeout": 5000,
                                       "topic_partitions": [{"topic": TOPIC,
                                                             "partitions": [0]}]},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.ALTER)]),
        Case(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, {"timeout": 5000, "topics": []},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.ALTER)]),
        Case(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, {"timeout": 5000, "topics": None},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.DESCRIBE)]),
        Case(ApiKey.OFFSET_DELETE, 0, {"group_id": GROUP, "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0}]}]},
             top, GROUP_DENIED, [(G, GROUP, Op.DELETE)]),
        Case(ApiKey.ALTER_PARTITION, 2, {"broker_id": 1, "broker_epoch": -1, "topics": []},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)]),
        Case(ApiKey.DESCRIBE_CLUSTER, 1, {"include_cluster_authorized_operations": True},
             lambda r: [ErrorCode.cluster_authorization_failed
                        if r.cluster_authorized_operations == 0 else r.error_code],
             CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.DESCRIBE)]),
        Case(ApiKey.DESCRIBE_PRODUCERS, 0, {"topics": [
            {"name": TOPIC, "partition_indexes": [0]}]},
             per_partition("topics", "partitions"), TOPIC_DENIED, [(T, TOPIC, Op.READ)]),
        Case(ApiKey.ALLOCATE_PRODUCER_IDS, 0, {"broker_id": 1, "broker_epoch": -1},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)]),
        Case(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, {
            "group_id": GROUP, "member_id": "", "member_epoch": 0, "rebalance_timeout": 5000,
            "subscribed_topic_names": [TOPIC], "topic_partitions": []},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)], [(T, TOPIC, Op.DESCRIBE)]),
        Case(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, {
            "group_id": GROUP, "member_id": "", "member_epoch": 0, "rebalance_timeout": 5000,
            "subscribed_topic_names": [TOPIC], "topic_partitions": []},
             top, TOPIC_DENIED, [(T, TOPIC, Op.DESCRIBE)], [(G, GROUP, Op.READ)],
             name="topic"),
        Case(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, {"group_ids": [GROUP],
                                                 "include_authorized_operations": True},
             lambda r: [g.error_code for g in r.groups], GROUP_DENIED,
             [(G, GROUP, Op.DESCRIBE)]),
        Case(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
            "group_id": GROUP, "member_id": "AAAAAAAAAAAAAAAAAAAAAA", "member_epoch": 0,
            "subscribed_topic_names": [TOPIC]},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)], [(T, TOPIC, Op.DESCRIBE)]),
        Case(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
            "group_id": GROUP, "member_id": "AAAAAAAAAAAAAAAAAAAAAA", "member_epoch": 0,
            "subscribed_topic_names": [TOPIC]},
             top, TOPIC_DENIED, [(T, TOPIC, Op.DESCRIBE)], [(G, GROUP, Op.READ)],
             name="topic"),
        Case(ApiKey.SHARE_GROUP_DESCRIBE, 1, {"group_ids": [GROUP],
                                              "include_authorized_operations": True},
             lambda r: [g.error_code for g in r.groups], GROUP_DENIED,
             [(G, GROUP, Op.DESCRIBE)]),
        Case(ApiKey.STREAMS_GROUP_HEARTBEAT, 0, _streams_join(), top, GROUP_DENIED,
             [(G, GROUP, Op.READ)], [(T, TOPIC, Op.DESCRIBE)]),
        Case(ApiKey.STREAMS_GROUP_HEARTBEAT, 0, _streams_join(), top, TOPIC_DENIED,
             [(T, TOPIC, Op.DESCRIBE)], [(G, GROUP, Op.READ)], name="topic"),
        Case(ApiKey.STREAMS_GROUP_DESCRIBE, 0, {"group_ids": [GROUP],
                                                "include_authorized_operations": True},
             lambda r: [g.error_code for g in r.groups], GROUP_DENIED,
             [(G, GROUP, Op.DESCRIBE)]),
        # Share groups (issue 17): the topic checks are in
        # tests/broker/share/test_share_authorization.py (they need the topic's id).
        Case(ApiKey.SHARE_FETCH, 1, {
            "group_id": GROUP, "member_id": "AAAAAAAAAAAAAAAAAAAAAA", "share_session_epoch": 0,
            "max_wait": 0, "min_bytes": 1, "max_bytes": 1024, "max_records": 10,
            "batch_size": 10, "topics": [], "forgotten_topics_data": []},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)]),
        Case(ApiKey.SHARE_ACKNOWLEDGE, 1, {
            "group_id": GROUP, "member_id": "AAAAAAAAAAAAAAAAAAAAAA", "share_session_epoch": -1,
            "topics": []},
             top, GROUP_DENIED, [(G, GROUP, Op.READ)]),
        # The share coordinator's state APIs (issue 17): brokers, CLUSTER_ACTION.
        *[Case(api, version, {"group_id": GROUP, "topics": [
            {"topic_id": SHARE_TOPIC_ID, "partitions": [partition]}]},
               per_partition("results", "partitions"), CLUSTER_DENIED,
               [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)])
          for api, version, partition in (
              (ApiKey.INITIALIZE_SHARE_GROUP_STATE, 0,
               {"partition": 0, "state_epoch": 0, "start_offset": 0}),
              (ApiKey.READ_SHARE_GROUP_STATE, 0, {"partition": 0, "leader_epoch": 0}),
              (ApiKey.WRITE_SHARE_GROUP_STATE, 1,
               {"partition": 0, "state_epoch": 0, "leader_epoch": 0, "start_offset": 0,
                "delivery_complete_count": -1, "state_batches": []}),
              (ApiKey.DELETE_SHARE_GROUP_STATE, 0, {"partition": 0}),
              (ApiKey.READ_SHARE_GROUP_STATE_SUMMARY, 1, {"partition": 0, "leader_epoch": 0}))],
        Case(ApiKey.FIND_COORDINATOR, 6, {"key_type": 2, "coordinator_keys": [
            coordinator_key(GROUP, SHARE_TOPIC_ID, 0)]},
             lambda r: [c.error_code for c in r.coordinators], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.CLUSTER_ACTION)], name="share"),
        # The share-group offset admin APIs (issue 17), on a group of their own.
        Case(ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, 1, {"groups": [
            {"group_id": SHARE_GROUP, "topics": None}]},
             lambda r: [g.error_code for g in r.groups], GROUP_DENIED,
             [(G, SHARE_GROUP, Op.DESCRIBE)]),
        Case(ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, 1, {"groups": [
            {"group_id": SHARE_GROUP, "topics": [{"topic_name": TOPIC, "partitions": [0]}]}]},
             lambda r: [p.error_code for g in r.groups for t in g.topics for p in t.partitions],
             TOPIC_DENIED, [(T, TOPIC, Op.DESCRIBE)], [(G, SHARE_GROUP, Op.DESCRIBE)],
             name="topic"),
        Case(ApiKey.ALTER_SHARE_GROUP_OFFSETS, 0, {"group_id": SHARE_GROUP, "topics": [
            {"topic_name": TOPIC, "partitions": [{"partition_index": 0, "start_offset": 0}]}]},
             top, GROUP_DENIED, [(G, SHARE_GROUP, Op.READ)], [(T, TOPIC, Op.READ)]),
        Case(ApiKey.ALTER_SHARE_GROUP_OFFSETS, 0, {"group_id": SHARE_GROUP, "topics": [
            {"topic_name": TOPIC, "partitions": [{"partition_index": 0, "start_offset": 0}]}]},
             per_partition("responses", "partitions"), TOPIC_DENIED, [(T, TOPIC, Op.READ)],
             [(G, SHARE_GROUP, Op.READ)], name="topic"),
        Case(ApiKey.DELETE_SHARE_GROUP_OFFSETS, 0, {"group_id": SHARE_GROUP, "topics": [
            {"topic_name": TOPIC}]},
             top, GROUP_DENIED, [(G, SHARE_GROUP, Op.DELETE)], [(T, TOPIC, Op.READ)]),
        Case(ApiKey.DELETE_SHARE_GROUP_OFFSETS, 0, {"group_id": SHARE_GROUP, "topics": [
            {"topic_name": TOPIC}]},
             lambda r: [t.error_code for t in r.responses], TOPIC_DENIED,
             [(T, TOPIC, Op.READ)], [(G, SHARE_GROUP, Op.DELETE)], name="topic"),
        Case(ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0, {"topics": [{"name": TOPIC}],
                                                   "response_partition_limit": 100},
             lambda r: [t.error_code for t in r.topics], TOPIC_DENIED,
             [(T, TOPIC, Op.DESCRIBE)]),
        Case(ApiKey.UPDATE_FEATURES, 1, {"timeout": 5000, "feature_updates": [],
                                         "validate_only": True},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.ALTER)]),
        Case(ApiKey.DESCRIBE_QUORUM, 2, {"topics": [
            {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.DESCRIBE)]),
        # The ACL, quota and SCRAM APIs (other parts of issue 16): the cluster.
        Case(29, 3, {"resource_type_filter": 1, "resource_name_filter": None,
                     "pattern_type_filter": 1, "principal_filter": None, "host_filter": None,
                     "operation": 1, "permission_type": 1},
             top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.DESCRIBE)]),
        Case(30, 3, {"creations": [
            {"resource_type": 2, "resource_name": "other", "resource_pattern_type": 3,
             "principal": "User:x", "host": "*", "operation": 3, "permission_type": 3}]},
             lambda r: [x.error_code for x in r.results], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.ALTER)]),
        Case(31, 3, {"filters": [
            {"resource_type_filter": 2, "resource_name_filter": "other",
             "pattern_type_filter": 3, "principal_filter": "User:x", "host_filter": None,
             "operation": 1, "permission_type": 1}]},
             lambda r: [x.error_code for x in r.filter_results], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.ALTER)]),
        Case(48, 1, {"components": [], "strict": False}, top, CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.DESCRIBE_CONFIGS)]),
        Case(49, 1, {"entries": [
            {"entity": [{"entity_type": "client-id", "entity_name": "c"}],
             "ops": [{"key": "producer_byte_rate", "value": 1024.0, "remove": False}]}],
            "validate_only": True},
             lambda r: [x.error_code for x in r.entries], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.ALTER_CONFIGS)]),
        Case(50, 0, {"users": None}, top, CLUSTER_DENIED, [(C, CLUSTER_NAME, Op.DESCRIBE)]),
        Case(51, 0, {"deletions": [{"name": "nobody", "mechanism": 1}], "upsertions": []},
             lambda r: [x.error_code for x in r.results], CLUSTER_DENIED,
             [(C, CLUSTER_NAME, Op.ALTER)]),
    ]


#: APIs with nothing to deny (Kafka checks nothing: ApiVersions, SASL), and
#: those that filter instead of refusing (ListGroups, ListTransactions:
#: test_authorization_filters.py).
NO_CASE = {ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, 36, ApiKey.LIST_GROUPS,
           ApiKey.LIST_TRANSACTIONS}


def _streams_join() -> dict[str, Any]:
    """A Kafka Streams member joining with a one-subtopology topology reading TOPIC."""
    return {"group_id": GROUP, "member_id": "streams-member", "member_epoch": 0,
            "endpoint_information_epoch": 0, "rebalance_timeout": 5000,
            "topology": {"epoch": 1, "subtopologies": [{
                "subtopology_id": "0", "source_topics": [TOPIC], "source_topic_regex": [],
                "state_changelog_topics": [], "repartition_sink_topics": [],
                "repartition_source_topics": [], "copartition_groups": []}]},
            "active_tasks": None, "standby_tasks": None, "warmup_tasks": None,
            "process_id": "p", "user_endpoint": None, "client_tags": [],
            "task_offsets": None, "task_end_offsets": None, "shutdown_application": False}


def test_every_registered_api_has_a_denial_case_and_a_table_entry() -> None:
    load_handlers()
    covered = {c.api for c in cases()} | NO_CASE
    missing = [api_name(k) for k in REGISTRY if k not in covered]
    assert not missing, f"add a denial case for {missing}"
    untabled = [api_name(k) for k in REGISTRY if k not in REQUIREMENTS]
    assert not untabled, f"add {untabled} to strom/broker/authorization.py REQUIREMENTS"


@pytest.fixture(scope="module")
def secured() -> Iterator[EmbeddedBroker]:
    with secured_broker({"auto.create.topics.enable": "false"}) as broker:
        with_acls(broker, [(C, CLUSTER_NAME, Op.CREATE)])
        with RawClient(broker.bootstrap) as client:
            made = client.send(ApiKey.CREATE_TOPICS, 5, {"topics": [
                {"name": TOPIC, "num_partitions": 1, "replication_factor": 1,
                 "assignments": [], "configs": []}], "timeout": 5000})
            assert made.topics[0].error_code == ErrorCode.none
        with_acls(broker, [])
        yield broker


def _ask(broker: EmbeddedBroker, case: Case) -> list[int]:
    with RawClient(broker.bootstrap, client_id=case.client_id) as client:
        if case.raw is not None:
            client.send_only(case.api, case.version, case.body)
            return case.raw(client.receive_frame()[4:])
        return [int(c) for c in case.codes(client.send(case.api, case.version, case.body))]


def _id(case: Case) -> str:
    return api_name(case.api) + (f"-{case.name}" if case.name else "")


@pytest.mark.parametrize("case", cases(), ids=_id)
def test_denied_without_and_allowed_with_the_permission(secured: EmbeddedBroker,
                                                        case: Case) -> None:
    load_handlers()
    if case.api not in REGISTRY:
        pytest.skip(f"{api_name(case.api)} is not served yet")
    with_acls(secured, case.base)
    got = _ask(secured, case)
    assert got and all(code == case.denied for code in got), \
        f"{api_name(case.api)}: expected {case.denied.name}, got {got}"
    if not case.grants:
        return
    with_acls(secured, case.base + case.grants)
    try:
        assert case.denied not in _ask(secured, case)
    finally:
        with_acls(secured, [])


def test_docs_table_is_the_generated_one() -> None:
    """docs/security.md "What each request needs" is requirements_markdown()'s output
    (regenerate it there when REQUIREMENTS changes)."""
    from pathlib import Path

    from strom.broker.authorization import requirements_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "security.md"
    assert requirements_markdown() in docs.read_text()


#: Fields some versions require that the cases above leave out (ignored by
#: versions without them).
_VERSION_FIELDS: dict[str, Any] = {
    "isolation_level": 0, "session_id": 0, "session_epoch": -1, "rack_id": "",
    "current_leader_epoch": -1, "log_start_offset": -1, "last_fetched_epoch": -1,
    "group_instance_id": None, "reason": None, "protocol_type": "consumer",
    "protocol_name": "range", "retention_time": -1, "require_stable": False,
    "include_authorized_operations": False, "states_filter": [],
    "allow_auto_topic_creation": False, "include_cluster_authorized_operations": False,
    "include_topic_authorized_operations": False, "timestamp": -1,
}


def _with_version_fields(body: Any) -> Any:
    if isinstance(body, dict):
        return {**{k: v for k, v in _VERSION_FIELDS.items() if k not in body},
                **{k: _with_version_fields(v) for k, v in body.items()}}
    if isinstance(body, list):
        return [_with_version_fields(v) for v in body]
    return body


def _all_codes(answer: Any) -> set[int]:
    """Every *error_code field of a kio response, at any depth."""
    import dataclasses

    found: set[int] = set()
    stack = [answer]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            for f in dataclasses.fields(item):
                value = getattr(item, f.name)
                if f.name.endswith("error_code"):
                    found.add(int(value))
                else:
                    stack.append(value)
    return found


def test_every_version_answers_the_denial(secured: EmbeddedBroker) -> None:
    """Each case at every version strom serves that its body can be built for:
    the denial code is in the answer (so old versions' responses carry it
    too, and encode), and the connection stays open."""
    load_handlers()
    with_acls(secured, [])
    tried: list[str] = []
    for case in cases():
        registration = REGISTRY.get(case.api)
        if registration is None or case.raw is not None or case.api in (
                ApiKey.DESCRIBE_CLUSTER, ApiKey.ENVELOPE):
            continue
        with_acls(secured, case.base)
        for version in range(registration.min_version, registration.max_version + 1):
            body = _with_version_fields(case.body)
            try:
                build(request_class(case.api, version), body)
            except (KeyError, TypeError, ValueError):
                continue  # the case's body does not fit this version
            with RawClient(secured.bootstrap, client_id=case.client_id) as client:
                answer = client.send(case.api, version, body)
            assert version < case.coded_from or int(case.denied) in _all_codes(answer), \
                f"{_id(case)} v{version}: no {case.denied.name} in {answer}"
            tried.append(f"{_id(case)} v{version}")
    with_acls(secured, [])
    print(f"{len(tried)} API versions answered the denial")
    assert len(tried) > 150, tried

"""What each request needs, as Apache Kafka 4.x's KafkaApis and ControllerApis
check it, and the helpers handlers use to ask.

Handlers stay thin: they ask `allowed`, `cluster_allowed` or
`authorized_names` and answer the error code Kafka answers for the API
(`REQUIREMENTS` lists them; docs/security.md "What each request needs" is
written from it). With no `authorizer.class.name` the authorizer is ALLOW_ALL
and every helper answers "allowed" without per-resource work, so a broker
without security pays nothing on its hot paths (produce, fetch).

Forwarded admin requests (KIP-590) are checked where Kafka checks them: on the
controller, against the principal the Envelope carries (forwarding.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from strom.broker.context import RequestContext
from strom.errors import (
    ClusterAuthorizationFailedError,
    ErrorCode,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from strom.protocol.api import ApiKey
from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType

#: Kafka's value of an authorized-operations field that was not asked for
#: (the schema's default, Integer.MIN_VALUE).
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)

#: The operations Kafka reports in KIP-430 answers per resource type
#: (AclEntry.supportedOperations).
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE,
                         AclOperation.DESCRIBE, AclOperation.DELETE, AclOperation.ALTER,
                         AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS),
    ResourceType.GROUP: (AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE,
                         AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS),
    ResourceType.CLUSTER: (AclOperation.CREATE, AclOperation.CLUSTER_ACTION,
                           AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
                           AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
                           AclOperation.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (AclOperation.DESCRIBE, AclOperation.WRITE),
}

#: What a denied operation on a resource of this type raises (each error
#: carries Kafka's code for it, strom/errors.py).
_DENIAL_ERRORS: dict[ResourceType, type[KafkaError]] = {
    ResourceType.TOPIC: TopicAuthorizationFailedError,
    ResourceType.GROUP: GroupAuthorizationFailedError,
    ResourceType.CLUSTER: ClusterAuthorizationFailedError,
    ResourceType.TRANSACTIONAL_ID: TransactionalIdAuthorizationFailedError,
}

#: Kafka's messages for those codes (Errors.java), where a response carries one.
DENIED_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.topic_authorization_failed: "Topic authorization failed.",
    ErrorCode.group_authorization_failed: "Group authorization failed.",
    ErrorCode.cluster_authorization_failed: "Cluster authorization failed.",
    ErrorCode.transactional_id_authorization_failed: "Transactional Id authorization failed.",
}


# --- asking ----------------------------------------------------------------------------


def allowed(ctx: RequestContext, operation: AclOperation, resource_type: ResourceType,
            name: str) -> bool:
    return ctx.authorize(operation, resource_type, name)


def cluster_allowed(ctx: RequestContext, operation: AclOperation) -> bool:
    return ctx.authorize(operation, ResourceType.CLUSTER, CLUSTER_NAME)


def authorized_names(ctx: RequestContext, operation: AclOperation,
                     resource_type: ResourceType, names: Iterable[str | None]) -> set[str]:
    """The names among `names` the principal may do `operation` on, each asked
    once (Kafka's filterByAuthorized)."""
    wanted = {n for n in names if n is not None}
    if not ctx.broker.authorizer.enabled:
        return wanted
    return {n for n in wanted if ctx.authorize(operation, resource_type, n)}


def any_allowed(ctx: RequestContext, operation: AclOperation,
                resource_type: ResourceType) -> bool:
    """Kafka's authorizeByResourceType: some ACL lets the principal do
    `operation` on some resource of this type."""
    authorizer = ctx.broker.authorizer
    return authorizer.authorize_by_resource_type(ctx.principal, ctx.client_address,
                                                 operation, resource_type)


def authorized_operations(ctx: RequestContext, resource_type: ResourceType, name: str) -> int:
    """KIP-430: the bit set (1 << operation code) of what the principal may do
    on the resource. With no authorizer Kafka reports every supported
    operation."""
    ops = SUPPORTED_OPERATIONS[resource_type]
    if not ctx.broker.authorizer.enabled:
        return sum(1 << op for op in ops)
    bits = 0
    for op in ops:
        if ctx.authorize(op, resource_type, name):
            bits |= 1 << op
    return bits


def operations_if(ctx: RequestContext, include: bool, resource_type: ResourceType,
                  name: str) -> int:
    """What an authorized-operations field carries: OMITTED unless asked for."""
    if not include:
        return AUTHORIZED_OPERATIONS_OMITTED
    return authorized_operations(ctx, resource_type, name)


def cluster_operations_if(ctx: RequestContext, include: bool) -> int:
    """Metadata and DescribeCluster: the cluster's operations when asked for,
    0 for a principal without DESCRIBE on the cluster (Kafka's answer)."""
    if not include:
        return AUTHORIZED_OPERATIONS_OMITTED
    if not cluster_allowed(ctx, AclOperation.DESCRIBE):
        return 0
    return authorized_operations(ctx, ResourceType.CLUSTER, CLUSTER_NAME)


#: Config resource types (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs)
#: -> the ACL resource they are authorized on (None: the cluster).
_CONFIG_RESOURCES: dict[int, ResourceType] = {
    2: ResourceType.TOPIC, 4: ResourceType.CLUSTER, 8: ResourceType.CLUSTER,
    16: ResourceType.CLUSTER, 32: ResourceType.GROUP}


def check_config_resource(ctx: RequestContext, operation: AclOperation, config_type: int,
                          name: str) -> None:
    """Raise Kafka's denial for `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS)
    on a config resource: topics on the topic, groups on the group, brokers,
    broker loggers and client metrics on the cluster."""
    resource_type = _CONFIG_RESOURCES.get(config_type)
    if resource_type is None:
        return  # an unknown type: the handler answers it
    resource = CLUSTER_NAME if resource_type == ResourceType.CLUSTER else name
    if not ctx.authorize(operation, resource_type, resource):
        raise _DENIAL_ERRORS[resource_type]()


def has_transactional_batch(records: object) -> bool:
    """Whether a produced partition's first batch has the transactional bit
    (Kafka's RequestUtils.hasTransactionalRecords looks at the first batch)."""
    if not isinstance(records, (bytes, bytearray, memoryview)) or len(records) < 23:
        return False
    # Batch header v2: base offset (8), length (4), partition leader epoch (4),
    # magic (1), crc (4), attributes (2): bit 4 is isTransactional.
    return records[16] == 2 and bool(records[22] & 0x10)


# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Need:
    """One check of a request: `operation` on a `resource` ("topic", "group",
    "cluster", "transactional id", or "-" for none), and what a denial answers."""

    resource: str
    operation: str
    denied: str
    note: str = ""


_T, _G, _C, _X = "topic", "group", "cluster", "transactional id"
_TOPIC, _GROUP = "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED"
_CLUSTER, _TXN = "CLUSTER_AUTHORIZATION_FAILED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
_NONE = Need("-", "-", "-", "no check (Kafka checks none)")

#: API -> the checks Kafka 4.x makes, in order. Every API strom serves has an
#: entry (tests/security/test_authorization_table.py keeps it so).
REQUIREMENTS: dict[int, tuple[Need, ...]] = {
    ApiKey.PRODUCE: (
        Need(_X, "WRITE", _TXN + " (whole request)",
             "when the batches are transactional"),
        Need(_T, "WRITE", _TOPIC + " per partition")),
    ApiKey.FETCH: (
        Need(_T, "READ", _TOPIC + " per partition", "consumers"),
        Need(_C, "CLUSTER_ACTION", _TOPIC + " for every partition",
             "follower fetches (replica id >= 0)")),
    ApiKey.LIST_OFFSETS: (Need(_T, "DESCRIBE", _TOPIC + " per partition"),),
    ApiKey.METADATA: (
        Need(_T, "DESCRIBE", _TOPIC,
             "named topics; unauthorized topics are left out of an all-topics answer"),
        Need(_C + " or " + _T, "CREATE", _TOPIC, "auto-creation of a named unknown topic"),
        Need(_C, "DESCRIBE", "0 authorized operations",
             "cluster_authorized_operations (v8-v10)")),
    ApiKey.OFFSET_COMMIT: (Need(_G, "READ", _GROUP + " (whole request)"),
                           Need(_T, "READ", _TOPIC + " per partition")),
    ApiKey.OFFSET_FETCH: (
        Need(_G, "DESCRIBE", _GROUP + " (per group from v8)"),
        Need(_T, "DESCRIBE", _TOPIC + " per partition",
             "named topics; unauthorized topics are left out of an all-topics answer")),
    ApiKey.FIND_COORDINATOR: (Need(_G, "DESCRIBE", _GROUP, "key type GROUP"),
                              Need(_X, "DESCRIBE", _TXN, "key type TRANSACTION"),
                              Need(_C, "CLUSTER_ACTION", _CLUSTER,
                                   "key type SHARE (brokers' share-state persisters)")),
    ApiKey.JOIN_GROUP: (Need(_G, "READ", _GROUP),),
    ApiKey.HEARTBEAT: (Need(_G, "READ", _GROUP),),
    ApiKey.LEAVE_GROUP: (Need(_G, "READ", _GROUP),),
    ApiKey.SYNC_GROUP: (Need(_G, "READ", _GROUP),),
    ApiKey.DESCRIBE_GROUPS: (Need(_G, "DESCRIBE", _GROUP + " per group"),),
    ApiKey.DELETE_GROUPS: (Need(_G, "DELETE", _GROUP + " per group"),),
    ApiKey.LIST_GROUPS: (Need(_C + " or " + _G, "DESCRIBE", "-",
                              "groups without DESCRIBE are left out"),),
    ApiKey.SASL_HANDSHAKE: (_NONE,),
    ApiKey.API_VERSIONS: (_NONE,),
    ApiKey.CREATE_TOPICS: (
        Need(_C + " or " + _T, "CREATE", _TOPIC + " per topic"),
        Need(_T, "DESCRIBE_CONFIGS", "topic_config_error_code " + _TOPIC,
             "the configs in the answer (v5+)")),
    ApiKey.DELETE_TOPICS: (Need(_T, "DESCRIBE", _TOPIC + " per topic"),
                           Need(_C + " or " + _T, "DELETE", _TOPIC + " per topic")),
    ApiKey.DELETE_RECORDS: (Need(_T, "DELETE", _TOPIC + " per partition"),),
    ApiKey.INIT_PRODUCER_ID: (
        Need(_X, "WRITE", _TXN, "with a transactional id"),
        Need(_C, "IDEMPOTENT_WRITE", _CLUSTER,
             "without one: IDEMPOTENT_WRITE on the cluster or WRITE on any topic")),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (
        Need(_C, "CLUSTER_ACTION", "-", "a broker may ask for any topic"),
        Need(_T, "DESCRIBE", _TOPIC + " per partition", "otherwise")),
    ApiKey.ADD_PARTITIONS_TO_TXN: (
        Need(_X, "WRITE", _TXN + " per transaction", "v0-v3 (clients)"),
        Need(_T, "WRITE", _TOPIC + " per partition (others OPERATION_NOT_ATTEMPTED)",
             "v0-v3"),
        Need(_C, "CLUSTER_ACTION", _CLUSTER + " (whole request)", "v4+ (brokers)")),
    ApiKey.ADD_OFFSETS_TO_TXN: (Need(_X, "WRITE", _TXN), Need(_G, "READ", _GROUP)),
    ApiKey.END_TXN: (Need(_X, "WRITE", _TXN),),
    ApiKey.WRITE_TXN_MARKERS: (Need(_C, "ALTER or CLUSTER_ACTION", _CLUSTER + " (whole request)"),),
    ApiKey.TXN_OFFSET_COMMIT: (Need(_X, "WRITE", _TXN + " (whole request)"),
                               Need(_G, "READ", _GROUP + " (whole request)"),
                               Need(_T, "READ", _TOPIC + " per partition")),
    29: (Need(_C, "DESCRIBE", "SECURITY_DISABLED without an authorizer; "
                                + _CLUSTER),),
    30: (Need(_C, "ALTER", _CLUSTER),),
    31: (Need(_C, "ALTER", _CLUSTER),),
    ApiKey.DESCRIBE_CONFIGS: (
        Need(_T, "DESCRIBE_CONFIGS", _TOPIC + " per resource"),
        Need(_C, "DESCRIBE_CONFIGS", _CLUSTER + " per resource", "broker and broker logger"),
        Need(_G, "DESCRIBE_CONFIGS", _GROUP + " per resource", "group configs")),
    ApiKey.ALTER_CONFIGS: (
        Need(_T, "ALTER_CONFIGS", _TOPIC + " per resource"),
        Need(_C, "ALTER_CONFIGS", _CLUSTER + " per resource", "broker and broker logger"),
        Need(_G, "ALTER_CONFIGS", _GROUP + " per resource", "group configs")),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (
        Need(_T, "ALTER_CONFIGS", _TOPIC + " per resource"),
        Need(_C, "ALTER_CONFIGS", _CLUSTER + " per resource", "broker and broker logger"),
        Need(_G, "ALTER_CONFIGS", _GROUP + " per resource", "group configs")),
    34: (Need(_C, "ALTER", _CLUSTER + " per partition"),),
    ApiKey.DESCRIBE_LOG_DIRS: (Need(_C, "DESCRIBE", _CLUSTER),),
    36: (_NONE,),
    ApiKey.CREATE_PARTITIONS: (Need(_T, "ALTER", _TOPIC + " per topic"),),
    ApiKey.ELECT_LEADERS: (Need(_C, "ALTER", _CLUSTER + " (whole request)"),),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (Need(_C, "ALTER", _CLUSTER + " (whole request)"),),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (Need(_C, "DESCRIBE", _CLUSTER + " (whole request)"),),
    ApiKey.OFFSET_DELETE: (Need(_G, "DELETE", _GROUP + " (whole request)"),
                           Need(_T, "READ", _TOPIC + " per partition")),
    48: (Need(_C, "DESCRIBE_CONFIGS", _CLUSTER),),
    49: (Need(_C, "ALTER_CONFIGS", _CLUSTER),),
    50: (Need(_C, "DESCRIBE", _CLUSTER),),
    51: (Need(_C, "ALTER", _CLUSTER),),
    ApiKey.DESCRIBE_QUORUM: (Need(_C, "DESCRIBE", _CLUSTER + " (whole request)"),),
    ApiKey.ALTER_PARTITION: (Need(_C, "CLUSTER_ACTION", _CLUSTER + " (whole request)"),),
    ApiKey.DESCRIBE_CLUSTER: (Need(_C, "DESCRIBE", "0 authorized operations",
                                   "cluster_authorized_operations when asked for"),),
    ApiKey.DESCRIBE_PRODUCERS: (Need(_T, "READ", _TOPIC + " per partition"),),
    ApiKey.DESCRIBE_TRANSACTIONS: (
        Need(_X, "DESCRIBE", _TXN + " per transactional id"),
        Need(_T, "DESCRIBE", "-", "topics without DESCRIBE are left out of the answer")),
    ApiKey.LIST_TRANSACTIONS: (Need(_X, "DESCRIBE", "-",
                                    "transactions without DESCRIBE are left out"),),
    ApiKey.ALLOCATE_PRODUCER_IDS: (Need(_C, "CLUSTER_ACTION", _CLUSTER),),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: (
        Need(_G, "READ", _GROUP),
        Need(_T, "DESCRIBE", _TOPIC, "every topic named in subscribed_topic_names"),
        Need(_T, "DESCRIBE", "-", "a regex resolves to the topics the member refreshing "
             "it may describe")),
    ApiKey.CONSUMER_GROUP_DESCRIBE: (
        Need(_G, "DESCRIBE", _GROUP + " per group"),
        Need(_T, "DESCRIBE", _TOPIC + " per group",
             "every topic of its members' assignments and target assignments")),
    ApiKey.STREAMS_GROUP_HEARTBEAT: (
        Need(_G, "READ", _GROUP),
        Need(_T, "DESCRIBE", _TOPIC, "every topic of the topology a joining member sends"),
        Need(_C, "CREATE", "-", "or CREATE on the topic: missing internal topics are "
             "created, else the status MISSING_INTERNAL_TOPICS says who may not")),
    ApiKey.STREAMS_GROUP_DESCRIBE: (
        Need(_G, "DESCRIBE", _GROUP + " per group"),
        Need(_T, "DESCRIBE", _TOPIC + " per group", "every topic of its topology")),
    ApiKey.SHARE_GROUP_HEARTBEAT: (
        Need(_G, "READ", _GROUP),
        Need(_T, "DESCRIBE", _TOPIC, "every topic named in subscribed_topic_names")),
    ApiKey.SHARE_GROUP_DESCRIBE: (
        Need(_G, "DESCRIBE", _GROUP + " per group"),
        Need(_T, "DESCRIBE", _TOPIC + " per group", "every topic of its members' assignments")),
    ApiKey.SHARE_FETCH: (Need(_G, "READ", _GROUP + " (whole request)"),
                         Need(_T, "READ", _TOPIC + " per partition",
                              "fetches and piggybacked acknowledgements")),
    ApiKey.SHARE_ACKNOWLEDGE: (Need(_G, "READ", _GROUP + " (whole request)"),
                               Need(_T, "READ", _TOPIC + " per partition")),
    # The share coordinator's state APIs, sent by brokers (KIP-932).
    ApiKey.INITIALIZE_SHARE_GROUP_STATE: (Need(_C, "CLUSTER_ACTION", _CLUSTER + " per partition"),),
    ApiKey.READ_SHARE_GROUP_STATE: (Need(_C, "CLUSTER_ACTION", _CLUSTER + " per partition"),),
    ApiKey.WRITE_SHARE_GROUP_STATE: (Need(_C, "CLUSTER_ACTION", _CLUSTER + " per partition"),),
    ApiKey.DELETE_SHARE_GROUP_STATE: (Need(_C, "CLUSTER_ACTION", _CLUSTER + " per partition"),),
    ApiKey.READ_SHARE_GROUP_STATE_SUMMARY: (
        Need(_C, "CLUSTER_ACTION", _CLUSTER + " per partition"),),
    ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS: (
        Need(_G, "DESCRIBE", _GROUP + " per group"),
        Need(_T, "DESCRIBE", _TOPIC + " per partition", "named topics")),
    ApiKey.ALTER_SHARE_GROUP_OFFSETS: (Need(_G, "READ", _GROUP + " (whole request)"),
                                       Need(_T, "READ", _TOPIC + " per partition")),
    ApiKey.DELETE_SHARE_GROUP_OFFSETS: (Need(_G, "DELETE", _GROUP + " (whole request)"),
                                        Need(_T, "READ", _TOPIC + " per topic")),
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: (
        Need(_T, "DESCRIBE", _TOPIC,
             "named topics; unauthorized topics are left out of an all-topics answer"),),
    ApiKey.UPDATE_FEATURES: (Need(_C, "ALTER", _CLUSTER + " (whole request)"),),
    ApiKey.ENVELOPE: (Need(_C, "CLUSTER_ACTION", _CLUSTER + " (the Envelope's error)",
                           "the forwarding broker's principal; the inner request is "
                           "checked against the principal the Envelope carries"),),
}


#: APIs strom's ApiKey may not name yet (served by other modules of issue 16).
_NAMES = {29: "DESCRIBE_ACLS", 30: "CREATE_ACLS", 31: "DELETE_ACLS",
          34: "ALTER_REPLICA_LOG_DIRS", 36: "SASL_AUTHENTICATE", 48: "DESCRIBE_CLIENT_QUOTAS",
          49: "ALTER_CLIENT_QUOTAS", 50: "DESCRIBE_USER_SCRAM_CREDENTIALS",
          51: "ALTER_USER_SCRAM_CREDENTIALS"}


def api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return _NAMES.get(api_key, str(api_key))


def requirements_markdown() -> str:
    """The table of docs/security.md "What each request needs"."""
    lines = ["| API | resource | operation | denied → | when |", "|---|---|---|---|---|"]
    for api, needs in sorted(REQUIREMENTS.items()):
        for i, need in enumerate(needs):
            name = f"{api_name(api)} ({api})" if i == 0 else ""
            lines.append(f"| {name} | {need.resource} | {need.operation} | {need.denied} | "
                         f"{need.note} |")
    return "\n".join(lines)

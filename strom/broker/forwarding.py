"""Admin requests forwarded to the controller in an Envelope (KIP-590).

Only the controller commits metadata. A client may send CreateTopics,
DeleteTopics, CreatePartitions, AlterConfigs, IncrementalAlterConfigs,
AlterPartitionReassignments, ListPartitionReassignments, AlterClientQuotas or
UpdateFeatures to any broker; a
broker that is not the controller sends the request on, as Kafka's brokers
do: the client's request (its header, with the client's correlation id and
version, and its body) goes to the controller inside an Envelope (API 58)
with the client's principal and address; the controller runs it through the
same handler a client's request would reach and answers the handler's
response inside the Envelope's; the forwarding broker relays that response to
the client unchanged.

Kafka's rules, kept here:
- An Envelope answered NOT_CONTROLLER (the controller moved, or lost its
  place while handling: any NOT_CONTROLLER in the embedded response turns the
  whole Envelope into NOT_CONTROLLER) or a lost connection is sent again to
  the controller the image names next, until the request timeout; then the
  client gets REQUEST_TIMED_OUT in every result. If this broker has become the
  controller meanwhile, it handles the request itself.
- UNSUPPORTED_VERSION on the Envelope (the controller cannot read the
  embedded request) closes the client's connection, so the client asks again
  after renewing its versions; any other Envelope error reaches the client as
  UNKNOWN_SERVER_ERROR (a broker misconfiguration, not the client's doing).
- The controller takes Envelopes from brokers only. Kafka serves Envelope on
  its controller listener alone and closes a client listener's connection
  that sends one; strom serves it on any listener, so an Envelope whose
  sender does not name itself as a registered broker (the client id strom's
  brokers use) has its connection closed: this keeps clients from sending
  Envelopes by mistake, not an attacker who copies a broker's client id
  (Kafka without an authorizer is no stricter). With an authorizer the sender
  also needs CLUSTER_ACTION on the cluster (Kafka's rule; brokers are super
  users or granted it), else CLUSTER_AUTHORIZATION_FAILED: that is what stops
  a client from speaking for another principal. The
  Envelope carries the client's principal (DefaultPrincipalData) and address,
  and the controller authorizes the inner request as that principal. Envelope
  is not listed in ApiVersions, as Kafka's controller-only APIs are not.

A forwarded request is answered once what the controller committed is in this
broker's own image (so a Metadata or DescribeConfigs right after it, here,
sees the change), as ControllerChannel.create_topic does, bounded by the same
timeout; past it the controller's answer is relayed anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from strom.broker.context import RequestContext
from strom.broker.router import REGISTRY, Response
from strom.cluster.image import MetadataImage
from strom.cluster.store import MetadataStore
from strom.errors import (
    ErrorCode,
    InvalidRequestError,
    KafkaError,
    NetworkError,
    RequestTimedOutError,
)
from strom.protocol.api import ApiKey, request_header_version, response_class
from strom.protocol.client_frames import decode_response
from strom.protocol.headers import parse_request_header, peek_header
from strom.protocol.messages import ZERO_UUID, decode_request, encode_response
from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType
from strom.security.principal import KafkaPrincipal

if TYPE_CHECKING:
    from kio.schema.envelope.v0.response import EnvelopeResponse

    from strom.broker.peer_client import PeerClient

log = logging.getLogger(__name__)

#: What a broker that is not the controller sends on (Kafka's forwardable
#: APIs that strom serves).
FORWARDED_APIS = frozenset({ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS,
                            ApiKey.CREATE_PARTITIONS, ApiKey.ALTER_CONFIGS,
                            ApiKey.INCREMENTAL_ALTER_CONFIGS,
                            ApiKey.ALTER_PARTITION_REASSIGNMENTS,
                            ApiKey.LIST_PARTITION_REASSIGNMENTS, ApiKey.UPDATE_FEATURES,
                            ApiKey.ALTER_CLIENT_QUOTAS, ApiKey.CREATE_ACLS,
                            ApiKey.DELETE_ACLS, ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
                            ApiKey.DESCRIBE_QUORUM})

#: The client id of strom's brokers when they talk to each other
#: (PeerClient.client_id is f"{BROKER_CLIENT_ID}{node id}").
BROKER_CLIENT_ID = "strom-broker-"

#: Longest pause before asking again after NOT_CONTROLLER or a lost
#: connection, when the image names no other controller meanwhile.
MAX_RETRY_PAUSE_S = 1.0

Handler = Callable[[RequestContext, Any], Awaitable[Response]]
ImagePredicate = Callable[[MetadataImage], bool]
#: Given the request and the controller's response, what this broker's image
#: must show before the client is answered (None: nothing to wait for).
Settled = Callable[[Any, Any], ImagePredicate | None]


def forwarded_to_controller(handler: Handler) -> Handler:
    """Decorate the handler of an API only the controller may serve: on a
    broker that is not the controller the request goes to the controller."""

    async def handle(ctx: RequestContext, request: Any) -> Response:
        forwarder = ctx.broker.forwarder
        if forwarder is None or not forwarder.should_forward(ctx):
            return await handler(ctx, request)
        return await forwarder.forward(ctx, request, handler)

    handle.__doc__ = handler.__doc__
    return handle


class Forwarder:
    """Sends requests to the controller in Envelopes and relays its answers."""

    def __init__(self, metadata: MetadataStore, peers: PeerClient | None, *,
                 timeout: float = 30.0) -> None:
        """`peers` None: a single node, its own controller, never forwards."""
        self._metadata = metadata
        self._peers = peers
        self.timeout = timeout
        self._waiters: list[tuple[ImagePredicate, asyncio.Future[None]]] = []
        metadata.subscribe(self._on_image)

    def should_forward(self, ctx: RequestContext) -> bool:
        """True on a broker of a cluster that is not the controller, for a
        request from a client (a forwarded one is never sent on again)."""
        return (self._peers is not None and not ctx.forwarded
                and self._metadata.image.controller_id != self._metadata.node_id)

    async def forward(self, ctx: RequestContext, request: Any, local: Handler,
                      settled: Settled | None = None) -> Response:
        """The controller's response to `request` (handled by `local` should
        this broker become the controller meanwhile); None when the client's
        connection must close (Kafka's answer to UNSUPPORTED_VERSION)."""
        # A single node never forwards: the Envelope's schemas load here.
        from kio.schema.envelope.v0.request import EnvelopeRequest
        from kio.schema.envelope.v0.response import EnvelopeResponse

        from strom.broker.envelope_data import (
            address_bytes,
            embed_request,
            principal_bytes,
            principal_data,
        )

        assert self._peers is not None
        api_key = ApiKey(ctx.header.api_key)
        envelope = EnvelopeRequest(request_data=embed_request(ctx.header, request),
                                   request_principal=principal_bytes(
                                       principal_data(ctx.principal)),
                                   client_host_address=address_bytes(ctx.client_host))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pause = 0.05
        while True:
            image = self._metadata.image
            if image.controller_id == self._metadata.node_id:
                return await local(ctx, request)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return error_response(api_key, request, ErrorCode.request_timed_out,
                                      f"the controller did not answer within {self.timeout}s")
            controller = image.brokers.get(image.controller_id)
            if controller is None:
                await self._wait(lambda i: i.controller_id in i.brokers, remaining)
                continue
            try:
                answer = await self._peers.request(controller, envelope, EnvelopeResponse,
                                                   timeout=remaining)
            except NetworkError as exc:
                log.debug("forwarding %s to controller %d: %s", api_key.name,
                          controller.node_id, exc)
                answer = None
            except RequestTimedOutError:
                return error_response(api_key, request, ErrorCode.request_timed_out,
                                      f"the controller did not answer within {self.timeout}s")
            if answer is None or answer.error_code == ErrorCode.not_controller:
                # The controller moved (or is moving): ask the next one the
                # image names, or this one again after a pause.
                await self._wait(_controller_other_than(controller.node_id),
                                 min(pause, max(deadline - loop.time(), 0)))
                pause = min(pause * 2, MAX_RETRY_PAUSE_S)
                continue
            return await self._relay(ctx, request, answer, deadline, settled)

    async def _relay(self, ctx: RequestContext, request: Any, answer: EnvelopeResponse,
                     deadline: float, settled: Settled | None) -> Response:
        api_key, version = ApiKey(ctx.header.api_key), ctx.header.api_version
        if answer.error_code == ErrorCode.unsupported_version:
            log.info("closing the connection of %s: the controller could not read its "
                     "forwarded %s v%d", ctx.client_host or "a client", api_key.name, version)
            ctx.close_connection = True
            return None
        if answer.error_code != ErrorCode.none or answer.response_data is None:
            log.warning("the controller refused a forwarded %s: error %s", api_key.name,
                        ErrorCode(answer.error_code).name)
            return error_response(api_key, request, ErrorCode.unknown_server_error, None)
        try:
            _, response = decode_response(answer.response_data,
                                          response_class(api_key, version))
        except Exception as exc:
            log.error("unreadable %s v%d response from the controller: %r", api_key.name,
                      version, exc)
            return error_response(api_key, request, ErrorCode.unknown_server_error, None)
        settle = settled or SETTLED.get(api_key)
        predicate = settle(request, response) if settle is not None else None
        if predicate is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            if not await self._wait(predicate, max(remaining, 0)):
                log.warning("the controller committed a forwarded %s, but this broker's "
                            "metadata did not show it within %ss", api_key.name,
                            self.timeout)
        return response

    # --- waiting on the image -------------------------------------------------

    def _on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate(new):
                future.set_result(None)

    async def _wait(self, predicate: ImagePredicate, timeout: float) -> bool:
        """Until the image satisfies `predicate` (True) or `timeout` passed (False)."""
        if predicate(self._metadata.image):
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(entry)


def _controller_other_than(node_id: int) -> ImagePredicate:
    return lambda image: image.controller_id != node_id


# --- the controller's side -----------------------------------------------------


async def serve_envelope(ctx: RequestContext, envelope: Any) -> Response:
    """The Envelope handler's work (handlers/envelope.py)."""
    from strom.broker.envelope_data import principal_from_bytes

    broker = ctx.broker
    sender = broker_of_client_id(ctx.header.client_id)
    if ctx.forwarded or sender is None or sender not in broker.image.brokers:
        log.info("closing the connection of %s (client id %r): an Envelope is accepted "
                 "from the cluster's brokers only", ctx.client_host or "a client",
                 ctx.header.client_id)
        ctx.close_connection = True
        return None
    if not ctx.authorize(AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME):
        # Kafka: only a principal with CLUSTER_ACTION (a broker) may forward.
        return _envelope_error(ErrorCode.cluster_authorization_failed)
    if broker.image.controller_id != broker.node_id:
        return _envelope_error(ErrorCode.not_controller)
    try:
        client = ipaddress.ip_address(bytes(envelope.client_host_address))
    except ValueError:
        return _envelope_error(ErrorCode.invalid_request)
    try:
        carried = principal_from_bytes(envelope.request_principal)
    except Exception:
        return _envelope_error(ErrorCode.principal_deserialization_failure)
    # Kafka answers a request it cannot parse inside an Envelope with
    # UNSUPPORTED_VERSION, and a request it would not forward with INVALID_REQUEST.
    frame = bytes(envelope.request_data)
    try:
        api_key, version, _ = peek_header(frame)
    except InvalidRequestError:
        return _envelope_error(ErrorCode.unsupported_version)
    if api_key not in FORWARDED_APIS:
        return _envelope_error(ErrorCode.invalid_request)
    registration = REGISTRY.get(api_key)
    if registration is None or not registration.min_version <= version <= \
            registration.max_version:
        return _envelope_error(ErrorCode.unsupported_version)
    try:
        header, offset = parse_request_header(frame, request_header_version(api_key, version))
        request = decode_request(api_key, version, frame, offset)
    except InvalidRequestError:
        return _envelope_error(ErrorCode.unsupported_version)
    # The inner request is authorized as the client's, on the client's listener.
    inner = RequestContext(header, broker, client_host=f"/{client}", forwarded=True,
                           principal=KafkaPrincipal(carried.type_, carried.name,
                                                    carried.token_authenticated),
                           listener_name=ctx.listener_name,
                           security_protocol=ctx.security_protocol)
    try:
        response = await registration.handler(inner, request)
    except KafkaError as exc:
        response = error_response(ApiKey(api_key), request, exc.code, exc.message)
    except Exception:
        log.exception("forwarded %s v%d from broker %d failed", ApiKey(api_key).name,
                      version, sender)
        response = error_response(ApiKey(api_key), request, ErrorCode.unknown_server_error,
                                  None)
    if response is None or inner.close_connection:
        return _envelope_error(ErrorCode.unknown_server_error)
    if ErrorCode.not_controller in error_codes(response):
        # So the forwarding broker asks the new controller (Kafka's
        # RequestChannel.shouldReturnNotController).
        return _envelope_error(ErrorCode.not_controller)
    return {"error_code": ErrorCode.none,
            "response_data": encode_response(api_key, version, header.correlation_id,
                                             response)}


def _envelope_error(code: ErrorCode) -> dict[str, Any]:
    return {"error_code": code, "response_data": None}


def broker_of_client_id(client_id: str | None) -> int | None:
    """The node id a broker's client id names, None for any other client id."""
    if client_id is None or not client_id.startswith(BROKER_CLIENT_ID):
        return None
    digits = client_id[len(BROKER_CLIENT_ID):]
    return int(digits) if digits.isascii() and digits.isdigit() else None


def error_codes(payload: Any) -> set[int]:
    """Every error_code field anywhere in a response (dicts, lists, kio entities)."""
    found: set[int] = set()
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            code = item.get("error_code")
            if code is not None:
                found.add(int(code))
            stack.extend(v for v in item.values() if isinstance(v, (Mapping, list, tuple)))
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.append({f.name: getattr(item, f.name) for f in dataclasses.fields(item)})
    return found


# --- error responses and settle conditions per API ---------------------------------


def error_response(api_key: ApiKey, request: Any, code: ErrorCode,
                   message: str | None) -> dict[str, Any]:
    """Every result of `request` failed with `code` (Kafka's getErrorResponse)."""
    if api_key == ApiKey.CREATE_TOPICS:
        return {"throttle_time": 0, "topics": [
            {"name": t.name, "topic_id": ZERO_UUID, "error_code": code,
             "error_message": message, "num_partitions": -1, "replication_factor": -1,
             "configs": []} for t in request.topics]}
    if api_key == ApiKey.DELETE_TOPICS:
        names = getattr(request, "topic_names", None)
        named: Sequence[tuple[str | None, uuid.UUID]] = (
            [(n, ZERO_UUID) for n in names] if names is not None
            else [(t.name, t.topic_id or ZERO_UUID) for t in request.topics])
        return {"throttle_time": 0, "responses": [
            {"name": n, "topic_id": i, "error_code": code, "error_message": message}
            for n, i in named]}
    if api_key == ApiKey.CREATE_PARTITIONS:
        return {"throttle_time": 0, "results": [
            {"name": t.name, "error_code": code, "error_message": message}
            for t in request.topics]}
    if api_key in (ApiKey.ALTER_CONFIGS, ApiKey.INCREMENTAL_ALTER_CONFIGS):
        return {"throttle_time": 0, "responses": [
            {"error_code": code, "error_message": message,
             "resource_type": r.resource_type, "resource_name": r.resource_name}
            for r in request.resources]}
    if api_key == ApiKey.ALTER_PARTITION_REASSIGNMENTS:
        return {"throttle_time": 0, "error_code": code, "error_message": message,
                "allow_replication_factor_change": bool(
                    getattr(request, "allow_replication_factor_change", True)),
                "responses": [
                    {"name": t.name, "partitions": [
                        {"partition_index": p.partition_index, "error_code": code,
                         "error_message": message} for p in t.partitions]}
                    for t in request.topics]}
    if api_key == ApiKey.LIST_PARTITION_REASSIGNMENTS:
        return {"throttle_time": 0, "error_code": code, "error_message": message,
                "topics": []}
    if api_key == ApiKey.ALTER_CLIENT_QUOTAS:
        return {"throttle_time": 0, "entries": [
            {"error_code": code, "error_message": message,
             "entity": [{"entity_type": e.entity_type, "entity_name": e.entity_name}
                        for e in entry.entity]} for entry in request.entries]}
    if api_key == ApiKey.UPDATE_FEATURES:  # v2 has no results; build() drops them
        return {"throttle_time": 0, "error_code": code, "error_message": message,
                "results": [{"feature": u.feature, "error_code": code, "error_message": message}
                            for u in request.feature_updates]}
    if api_key == ApiKey.CREATE_ACLS:
        return {"throttle_time": 0, "results": [
            {"error_code": code, "error_message": message} for _ in request.creations]}
    if api_key == ApiKey.DELETE_ACLS:
        return {"throttle_time": 0, "filter_results": [
            {"error_code": code, "error_message": message, "matching_acls": []}
            for _ in request.filters]}
    if api_key == ApiKey.ALTER_USER_SCRAM_CREDENTIALS:
        names = dict.fromkeys([d.name for d in request.deletions]
                              + [u.name for u in request.upsertions])
        return {"throttle_time": 0, "results": [
            {"user": name, "error_code": code, "error_message": message} for name in names]}
    if api_key == ApiKey.DESCRIBE_QUORUM:
        return {"error_code": code, "error_message": message, "topics": [], "nodes": []}
    raise AssertionError(f"{api_key.name} is not forwarded")


def _topics_created(request: Any, response: Any) -> ImagePredicate | None:
    if getattr(request, "validate_only", False):
        return None
    made = {t.name: getattr(t, "topic_id", ZERO_UUID) for t in response.topics
            if t.error_code == ErrorCode.none}
    if not made:
        return None

    def settled(image: MetadataImage) -> bool:
        for name, topic_id in made.items():
            topic = image.topics.get(name)
            if topic is None or (topic_id != ZERO_UUID and topic.topic_id != topic_id):
                return False
        return True
    return settled


def _topics_deleted(request: Any, response: Any) -> ImagePredicate | None:
    gone = [(r.name, getattr(r, "topic_id", None) or ZERO_UUID) for r in response.responses
            if r.error_code == ErrorCode.none]
    if not gone:
        return None
    return lambda image: all(
        (name is None or name not in image.topics)
        and (topic_id == ZERO_UUID or image.topic_by_id(topic_id) is None)
        for name, topic_id in gone)


def _partitions_created(request: Any, response: Any) -> ImagePredicate | None:
    if request.validate_only:
        return None
    counts = {t.name: t.count for t in request.topics}
    grown = [r.name for r in response.results
             if r.error_code == ErrorCode.none and r.name in counts]
    if not grown:
        return None
    # A topic deleted meanwhile counts as settled: there is nothing to wait for.
    return lambda image: all(name not in image.topics
                             or len(image.topics[name].partitions) >= counts[name]
                             for name in grown)


def _quotas_altered(request: Any, response: Any) -> ImagePredicate | None:
    """Every quota of the entries the controller accepted reads as asked."""
    if request.validate_only:
        return None
    wanted: list[tuple[tuple[tuple[str, str | None], ...], str, float | None]] = []
    for entry, result in zip(request.entries, response.entries, strict=False):
        if result.error_code != ErrorCode.none:
            continue
        entity = tuple(sorted({e.entity_type: e.entity_name for e in entry.entity}.items()))
        ops = {op.key: None if op.remove else float(op.value) for op in entry.ops}
        wanted += [(entity, key, value) for key, value in ops.items()]
    if not wanted:
        return None
    return lambda image: all(image.client_quotas.get(entity, {}).get(key) == value
                             for entity, key, value in wanted)


SETTLED: dict[ApiKey, Settled] = {
    ApiKey.CREATE_TOPICS: _topics_created,
    ApiKey.DELETE_TOPICS: _topics_deleted,
    ApiKey.CREATE_PARTITIONS: _partitions_created,
    ApiKey.ALTER_CLIENT_QUOTAS: _quotas_altered,
}

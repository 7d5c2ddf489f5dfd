"""AlterUserScramCredentials: add, change or remove users' SCRAM credentials.

Versions: 0. An upsertion carries the salt, the iterations and the salted
password (Hi(password, salt, i), computed by the client); the controller
keeps StoredKey and ServerKey derived from it (RFC 5802), never the salted
password. As Kafka's ScramControlManager: a user named more than once in a
request fails with DUPLICATE_RESOURCE ("A user credential cannot be altered
twice in the same request") and none of its changes apply; an empty name
fails UNACCEPTABLE_CREDENTIAL, a mechanism other than 1 (SCRAM-SHA-256) or 2
(SCRAM-SHA-512) UNSUPPORTED_SASL_MECHANISM, iterations outside 4096-16384
UNACCEPTABLE_CREDENTIAL ("Too few iterations" / "Too many iterations"),
deleting a credential that does not exist RESOURCE_NOT_FOUND. The valid
changes are one metadata operation. Needs ALTER on the cluster (else every
user fails with CLUSTER_AUTHORIZATION_FAILED). A broker that is not the
controller forwards the request to it (KIP-590).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.forwarding import forwarded_to_controller
from strom.broker.router import handles
from strom.cluster.image import MetadataRecord, RemoveScramCredentialRecord
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation

Error = tuple[ErrorCode, str]
DUPLICATE: Error = (ErrorCode.duplicate_resource,
                    "A user credential cannot be altered twice in the same request")


# strom.security.sasl.scram is imported where it is used, by the first request:
# with hashlib, hmac and secrets under it, it was ~1.5 ms of every start (issue 19).


def _check_name_and_mechanism(name: str, mechanism: int) -> Error | None:
    from strom.security.sasl.scram import MECHANISM_NAMES

    if not name:
        return ErrorCode.unacceptable_credential, "Username must not be empty"
    if mechanism not in MECHANISM_NAMES:
        return ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"
    return None


def _check_upsertion(upsertion: Any) -> Error | None:
    from strom.security.sasl.scram import MAX_ITERATIONS, MIN_ITERATIONS

    error = _check_name_and_mechanism(upsertion.name, upsertion.mechanism)
    if error is not None:
        return error
    if upsertion.iterations < MIN_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too few iterations"
    if upsertion.iterations > MAX_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too many iterations"
    return None


def _result(user: str, error: Error | None = None) -> dict[str, Any]:
    code, message = error if error is not None else (ErrorCode.none, None)
    return {"user": user, "error_code": code, "error_message": message}


@handles(ApiKey.ALTER_USER_SCRAM_CREDENTIALS)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not cluster_allowed(ctx, AclOperation.ALTER):
        names = dict.fromkeys([d.name for d in request.deletions]
                              + [u.name for u in request.upsertions])
        return {"throttle_time": 0, "results": [
            _result(name, (ErrorCode.cluster_authorization_failed,
                           "Cluster authorization failed.")) for name in names]}
    from strom.security.sasl.scram import MECHANISM_NAMES, credential_from_salted_password

    results: list[dict[str, Any]] = []

    def operation() -> Sequence[MetadataRecord]:
        # Run against the newest image (again, in a cluster, if it changed
        # before the records were written): start from nothing each time.
        results.clear()
        credentials = ctx.broker.metadata.image.scram_credentials
        deletions: dict[str, Any] = {}
        upsertions: dict[str, Any] = {}
        errors: dict[str, Error] = {}
        for deletion in request.deletions:
            name = deletion.name
            if name in errors:
                continue
            if deletions.pop(name, None) is not None:
                errors[name] = DUPLICATE
                continue
            error = _check_name_and_mechanism(name, deletion.mechanism)
            if error is None and deletion.mechanism not in credentials.get(name, {}):
                error = (ErrorCode.resource_not_found,
                         "Attempt to delete a user credential that does not exist")
            if error is not None:
                errors[name] = error
            else:
                deletions[name] = deletion
        for upsertion in request.upsertions:
            name = upsertion.name
            if name in errors:
                continue
            if (deletions.pop(name, None) is not None
                    or upsertions.pop(name, None) is not None):
                errors[name] = DUPLICATE
                continue
            error = _check_upsertion(upsertion)
            if error is not None:
                errors[name] = error
            else:
                upsertions[name] = upsertion
        records: list[MetadataRecord] = []
        for name, deletion in deletions.items():
            records.append(RemoveScramCredentialRecord(name=name, mechanism=deletion.mechanism))
            results.append(_result(name))
        for name, upsertion in upsertions.items():
            records.append(credential_from_salted_password(
                name, MECHANISM_NAMES[upsertion.mechanism], bytes(upsertion.salt),
                bytes(upsertion.salted_password), upsertion.iterations))
            results.append(_result(name))
        results.extend(_result(name, error) for name, error in errors.items())
        return records

    try:
        await ctx.broker.metadata.submit(operation)
    except KafkaError as exc:
        # Nothing was written (e.g. metadata.version below SCRAM's level): the
        # users whose change was valid get the reason, the others keep theirs.
        return {"throttle_time": 0, "results": [
            _result(r["user"], (exc.code, str(exc))) if r["error_code"] == ErrorCode.none
            else r for r in results]}
    return {"throttle_time": 0, "results": list(results)}

"""SASL/OAUTHBEARER (RFC 7628): the client's JWT validated with `pyjwt`
against the keys of a JWKS (Kafka's OAuthBearerValidatorCallbackHandler).

The client's first message is "n,[a=authzid],\\x01auth=Bearer <jwt>\\x01
[key=value\\x01...]\\x01". A valid token (signature by a JWKS key with an
asymmetric algorithm, exp in the future and iat/nbf in the past within
sasl.oauthbearer.clock.skew.seconds, the expected audience and issuer when
set, a subject in sasl.oauthbearer.sub.claim.name) completes the exchange;
its subject is the principal's name and its exp bounds the session (KIP-368).
An invalid one is answered, as RFC 7628 section 3.2.2 and Kafka do, with an
error challenge {"status":"invalid_token"}; the client acknowledges it with
a single \\x01 and is then refused with SASL_AUTHENTICATION_FAILED.

Sans-I/O: the keys come from a JwksKeys snapshot; a token signed by a key id
the snapshot lacks raises KeysNeeded, and the caller refreshes the keys
(oauthbearer_jwks.py does the I/O) and evaluates the same token again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from strom.errors import SaslAuthenticationError
from strom.security.sasl.mechanism import OAUTHBEARER

#: Signature algorithms accepted: asymmetric only, so a JWKS's public key can
#: never double as an HMAC secret (the classic algorithm-confusion attack).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")
INVALID_TOKEN = json.dumps({"status": "invalid_token"}, separators=(",", ":"))
INVALID_REQUEST = json.dumps({"status": "invalid_request"}, separators=(",", ":"))
_KV_SEP = "\x01"


class KeysNeeded(Exception):
    """The token names a key id the keys at hand lack: refresh and retry."""

    def __init__(self, kid: str | None) -> None:
        super().__init__(kid)
        self.kid = kid


class JwksKeys:
    """An immutable snapshot of a JSON Web Key Set's usable signing keys."""

    def __init__(self, keys: Iterable[jwt.PyJWK] = ()) -> None:
        self._keys = tuple(keys)

    @classmethod
    def from_json(cls, text: str) -> JwksKeys:
        """Keys of unsupported types or uses are skipped, as jose4j does;
        raises ValueError if the text is not a JWKS."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError('not a JSON Web Key Set (no "keys" list)')
        keys = []
        for item in data["keys"]:
            if not isinstance(item, dict) or item.get("use", "sig") != "sig":
                continue
            try:
                keys.append(jwt.PyJWK(item))
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue
        return cls(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def candidates(self, kid: str | None) -> list[jwt.PyJWK]:
        if kid is None:
            return list(self._keys)
        return [key for key in self._keys if key.key_id == kid]


@dataclass(frozen=True, slots=True)
class ValidatorSettings:
    """Kafka's sasl.oauthbearer.* settings of a listener."""

    expected_audience: Sequence[str] = ()
    expected_issuer: str | None = None
    sub_claim_name: str = "sub"
    scope_claim_name: str = "scope"
    clock_skew_s: int = 30
    #: Kafka's OAuthBearerUnsecuredValidatorCallbackHandler, named explicitly:
    #: unsigned tokens ({"alg":"none"}, empty signature) with exp checked. For
    #: development and tests only; never strom's default.
    unsecured: bool = False


def parse_client_first(token: bytes) -> tuple[str | None, str, dict[str, str]]:
    """(authzid, bearer token, extensions) of RFC 7628's client response."""
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    gs2, sep, rest = text.partition(",")
    if gs2 not in ("n", "y") or not sep:
        raise ValueError("bad GS2 header")
    authz, sep, rest = rest.partition(",")
    if not sep:
        raise ValueError("bad GS2 header")
    authzid = None
    if authz:
        if not authz.startswith("a="):
            raise ValueError("bad authorization id")
        authzid = authz[2:].replace("=2C", ",").replace("=3D", "=")
    if not rest.startswith(_KV_SEP) or not rest.endswith(_KV_SEP * 2):
        raise ValueError("bad key/value separators")
    pairs: dict[str, str] = {}
    for item in rest[1:-2].split(_KV_SEP):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError("bad key/value pair")
        pairs[key] = value
    auth = pairs.pop("auth", None)
    if auth is None:
        raise ValueError("no auth value")
    scheme, _, bearer = auth.partition(" ")
    if scheme.lower() != "bearer" or not bearer.strip():
        raise ValueError("auth is not a Bearer token")
    return authzid, bearer.strip(), pairs


class OAuthBearerServer:
    mechanism = OAUTHBEARER

    def __init__(self, keys: JwksKeys, settings: ValidatorSettings) -> None:
        self._keys = keys
        self._settings = settings
        self._principal: str | None = None
        self._expiry_ms: int | None = None
        self._error: str | None = None
        self._done = False

    def use_keys(self, keys: JwksKeys) -> None:
        self._keys = keys

    @property
    def complete(self) -> bool:
        return self._principal is not None

    @property
    def authorization_id(self) -> str:
        assert self._principal is not None
        return self._principal

    @property
    def credential_expiry_ms(self) -> int | None:
        return self._expiry_ms

    def evaluate(self, token: bytes) -> bytes:
        if self._done:
            raise SaslAuthenticationError("Authentication failed: OAUTHBEARER exchange is over")
        if self._error is not None:
            # The client's \x01 after our error challenge (RFC 7628 3.2.3).
            self._done = True
            raise SaslAuthenticationError(self._error)
        try:
            authzid, bearer, _extensions = parse_client_first(token)
        except ValueError as exc:
            self._done = True
            raise SaslAuthenticationError(
                f"Authentication failed: invalid OAUTHBEARER client response ({exc})") from None
        try:
            claims = self._validate(bearer)
        except jwt.PyJWTError as exc:
            return self._challenge(INVALID_TOKEN, exc)
        subject = claims.get(self._settings.sub_claim_name)
        if not isinstance(subject, str) or not subject:
            return self._challenge(INVALID_TOKEN, None)
        if authzid is not None and authzid != subject:
            return self._challenge(json.dumps({"status": "invalid_authorization_id"},
                                              separators=(",", ":")), None)
        exp = claims.get("exp")
        self._expiry_ms = int(exp * 1000) if isinstance(exp, int | float) else None
        self._principal = subject
        self._done = True
        return b""

    def _validate_unsecured(self, bearer: str) -> Mapping[str, Any]:
        if jwt.get_unverified_header(bearer).get("alg") != "none":
            raise jwt.InvalidAlgorithmError("an unsecured token's alg must be none")
        if bearer.count(".") != 2 or not bearer.endswith("."):
            raise jwt.InvalidSignatureError("an unsecured token has an empty signature")
        return jwt.decode(bearer, options={"verify_signature": False, "verify_exp": True,
                                           "verify_nbf": True, "require": ["exp"]},
                          leeway=self._settings.clock_skew_s)

    def unknown_key(self) -> bytes:
        """The answer when the keys, refreshed, still lack the token's key id."""
        return self._challenge(INVALID_TOKEN, None)

    def _challenge(self, body: str, _cause: Exception | None) -> bytes:
        self._error = body
        return body.encode("utf-8")

    def _validate(self, bearer: str) -> Mapping[str, Any]:
        if self._settings.unsecured:
            return self._validate_unsecured(bearer)
        header = jwt.get_unverified_header(bearer)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg!r} is not allowed")
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None
        candidates = self._keys.candidates(kid)
        if not candidates:
            raise KeysNeeded(kid)
        settings = self._settings
        options: dict[str, Any] = {"require": ["exp"],
                                   "verify_aud": bool(settings.expected_audience),
                                   "verify_iss": settings.expected_issuer is not None}
        last: jwt.PyJWTError = jwt.InvalidSignatureError("no key verified the signature")
        for key in candidates:
            try:
                return jwt.decode(
                    bearer, key=key, algorithms=[alg], options=options,  # type: ignore[arg-type]
                    audience=list(settings.expected_audience) or None,
                    issuer=settings.expected_issuer, leeway=settings.clock_skew_s)
            except jwt.InvalidSignatureError as exc:
                last = exc
            except jwt.InvalidKeyError as exc:  # a key of another type than alg's
                last = exc
        raise last

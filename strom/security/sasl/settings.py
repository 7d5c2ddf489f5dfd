"""The SASL settings of each SASL listener, read once at start-up.

Kafka's lookup order for a setting of one listener and mechanism:
listener.name.<listener>.<mechanism>.<setting> (sasl.jaas.config,
connections.max.reauth.ms, sasl.server.callback.handler.class and the
sasl.oauthbearer.* settings), then listener.name.<listener>.<setting>, then
<setting>. Listener and mechanism are lower case in the prefix, as Kafka
writes them. Kafka reads a broker's JAAS entries only under the listener and
mechanism prefix; strom also takes a plain `sasl.jaas.config` as the
fallback for PLAIN.

What strom cannot serve is refused here, with one line naming the setting:
GSSAPI (Kerberos, Kafka's default for sasl.enabled.mechanisms), a mechanism
it does not know, PLAIN without a PlainLoginModule JAAS entry, OAUTHBEARER
without a JWKS (Kafka's unsecured default validator accepts unsigned tokens;
strom has none), or a server callback handler other than Kafka's validator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from strom.config import BROKER_CONFIGS, BrokerConfig, Value
from strom.errors import InvalidConfigError
from strom.security.listeners import SASL_PROTOCOLS
from strom.security.sasl.jaas import PLAIN_LOGIN_MODULE, parse_single_module, plain_users
from strom.security.sasl.jwks import JwksSource
from strom.security.sasl.mechanism import GSSAPI, OAUTHBEARER, PLAIN, SUPPORTED_MECHANISMS
from strom.security.sasl.oauthbearer import ValidatorSettings

#: Kafka's validator of unsigned tokens (its default; strom's only when named).
OAUTH_UNSECURED_VALIDATOR = ("org.apache.kafka.common.security.oauthbearer.internals.unsecured."
                             "OAuthBearerUnsecuredValidatorCallbackHandler")
#: Kafka's validating callback handler (and its pre-3.4 'secured' package name).
OAUTH_VALIDATOR_CLASSES = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
)


@dataclass(slots=True)
class ListenerSasl:
    """How one SASL listener authenticates."""

    listener: str
    mechanisms: tuple[str, ...]
    plain_users: Mapping[str, str] = field(default_factory=dict)
    #: KIP-368 connections.max.reauth.ms per mechanism (0: no re-authentication).
    reauth_ms: Mapping[str, int] = field(default_factory=dict)
    oauth: ValidatorSettings | None = None
    jwks: JwksSource | None = None
    failed_authentication_delay_ms: int = 100


class _Lookup:
    def __init__(self, config: BrokerConfig, listener: str) -> None:
        self._config = config
        self._listener = listener.lower()

    def raw(self, name: str, mechanism: str | None = None) -> tuple[str, str | None]:
        """(the property name that set it, its text); text None if unset."""
        if mechanism is not None:
            key = f"{mechanism.lower()}.{name}"
            text = self._config.listener_raw(self._listener, key)
            if text is not None:
                return f"listener.name.{self._listener}.{key}", text
        text = self._config.listener_raw(self._listener, name)
        if text is not None:
            return f"listener.name.{self._listener}.{name}", text
        return name, None

    def value(self, name: str, mechanism: str | None = None) -> Value:
        prop, text = self.raw(name, mechanism)
        if text is None:
            return self._config.get(name)
        definition = BROKER_CONFIGS[name]
        try:
            return definition.parse(text)
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"{prop}: {exc}") from None


def _enabled_mechanisms(lookup: _Lookup, listener: str) -> tuple[str, ...]:
    value = lookup.value("sasl.enabled.mechanisms")
    mechanisms = tuple(m.strip() for m in value if m.strip()) if isinstance(value, list) else ()
    if not mechanisms:
        raise InvalidConfigError(
            f"sasl.enabled.mechanisms: no SASL mechanism enabled for listener {listener}")
    for mechanism in mechanisms:
        if mechanism == GSSAPI:
            raise InvalidConfigError(
                f"sasl.enabled.mechanisms: GSSAPI (Kerberos, Kafka's default) is not supported "
                f"by strom (listener {listener}); enable PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or "
                "OAUTHBEARER, e.g. sasl.enabled.mechanisms=SCRAM-SHA-512")
        if mechanism not in SUPPORTED_MECHANISMS:
            raise InvalidConfigError(
                f"sasl.enabled.mechanisms: unknown SASL mechanism {mechanism} (listener "
                f"{listener}); strom supports {', '.join(SUPPORTED_MECHANISMS)}")
    return mechanisms


def _plain_users(lookup: _Lookup, listener: str) -> dict[str, str]:
    prop, text = lookup.raw("sasl.jaas.config", PLAIN)
    if text is None:
        fallback = lookup.value("sasl.jaas.config")
        if isinstance(fallback, str) and fallback:
            prop, text = "sasl.jaas.config", fallback
    if text is None:
        raise InvalidConfigError(
            f"listener.name.{listener.lower()}.plain.sasl.jaas.config: not set, but PLAIN is "
            f"enabled on listener {listener} (set it to {PLAIN_LOGIN_MODULE} required "
            'user_<name>="<password>" ...;)')
    entry = parse_single_module(text, prop)
    if entry.login_module != PLAIN_LOGIN_MODULE:
        raise InvalidConfigError(
            f"{prop}: PLAIN users come from {PLAIN_LOGIN_MODULE}, not {entry.login_module}")
    return plain_users(entry)


def _oauth(lookup: _Lookup, listener: str) -> tuple[ValidatorSettings, JwksSource | None]:
    prop, handler = lookup.raw("sasl.server.callback.handler.class", OAUTHBEARER)
    if handler is None:
        configured = lookup.value("sasl.server.callback.handler.class")
        handler = configured if isinstance(configured, str) else None
    unsecured = handler is not None and handler.strip() == OAUTH_UNSECURED_VALIDATOR
    if handler and not unsecured and handler.strip() not in OAUTH_VALIDATOR_CLASSES:
        raise InvalidConfigError(
            f"{prop}: {handler} is not supported; strom validates OAUTHBEARER tokens as "
            f"{OAUTH_VALIDATOR_CLASSES[0]} does")
    url = lookup.value("sasl.oauthbearer.jwks.endpoint.url", OAUTHBEARER)
    if (not isinstance(url, str) or not url) and not unsecured:
        raise InvalidConfigError(
            f"sasl.oauthbearer.jwks.endpoint.url: not set, but OAUTHBEARER is enabled on "
            f"listener {listener} (strom validates tokens against a JWKS only; Kafka's "
            "unsecured default validator is not offered)")

    def number(name: str) -> int:
        value = lookup.value(name, OAUTHBEARER)
        assert isinstance(value, int)
        return value

    audience = lookup.value("sasl.oauthbearer.expected.audience", OAUTHBEARER)
    issuer = lookup.value("sasl.oauthbearer.expected.issuer", OAUTHBEARER)
    settings = ValidatorSettings(
        expected_audience=tuple(audience) if isinstance(audience, list) else (),
        expected_issuer=issuer if isinstance(issuer, str) and issuer else None,
        sub_claim_name=str(lookup.value("sasl.oauthbearer.sub.claim.name", OAUTHBEARER)),
        scope_claim_name=str(lookup.value("sasl.oauthbearer.scope.claim.name", OAUTHBEARER)),
        clock_skew_s=number("sasl.oauthbearer.clock.skew.seconds"), unsecured=unsecured)
    if unsecured:
        return settings, None
    assert isinstance(url, str)
    source = JwksSource(url, refresh_ms=number("sasl.oauthbearer.jwks.endpoint.refresh.ms"),
                        retry_backoff_ms=number("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms"))
    return settings, source


def listener_sasl(config: BrokerConfig, listener: str) -> ListenerSasl:
    """The settings of one SASL listener; InvalidConfigError for what strom refuses."""
    lookup = _Lookup(config, listener)
    mechanisms = _enabled_mechanisms(lookup, listener)
    settings = ListenerSasl(listener=listener, mechanisms=mechanisms)
    if PLAIN in mechanisms:
        settings.plain_users = _plain_users(lookup, listener)
    if OAUTHBEARER in mechanisms:
        settings.oauth, settings.jwks = _oauth(lookup, listener)
    reauth: dict[str, int] = {}
    for mechanism in mechanisms:
        value = lookup.value("connections.max.reauth.ms", mechanism)
        assert isinstance(value, int)
        reauth[mechanism] = value
    settings.reauth_ms = reauth
    delay = lookup.value("connection.failed.authentication.delay.ms")
    assert isinstance(delay, int)
    settings.failed_authentication_delay_ms = delay
    return settings


def sasl_listeners(config: BrokerConfig) -> dict[str, ListenerSasl]:
    """{listener name: its SASL settings} for every SASL_PLAINTEXT / SASL_SSL listener."""
    protocols = config.listener_security_protocols
    result: dict[str, ListenerSasl] = {}
    for name, _, _ in config.listeners:
        if protocols.get(name.upper()) in SASL_PROTOCOLS:
            result[name.upper()] = listener_sasl(config, name.upper())
    return result


def enabled_everywhere(listeners: Mapping[str, ListenerSasl]) -> Sequence[str]:
    """Every mechanism some listener enables (for messages and docs)."""
    return sorted({m for settings in listeners.values() for m in settings.mechanisms})

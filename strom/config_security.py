"""The TLS and SASL configs (docs/security.md): Kafka's names, defaults and
documentation, and the security protocols a listener may map to.
"""

from __future__ import annotations

from strom.config_schema import ConfigDef, T
from strom.config_schema import define as _d

# TLS (docs/security.md "Listeners and TLS"), Kafka's names and defaults. Each may
# be set for one listener as listener.name.<listener name, lower case>.<setting>.
# Kafka can change them at runtime; strom reads them at start-up.
SSL_CONFIGS: list[ConfigDef] = [
    _d("ssl.protocol", T.STRING, "TLSv1.3",
       "Highest TLS version offered (TLSv1.2 or TLSv1.3; TLS means TLSv1.3).", read_only=True),
    _d("ssl.enabled.protocols", T.LIST, ["TLSv1.2", "TLSv1.3"],
       "TLS versions accepted.", read_only=True),
    _d("ssl.cipher.suites", T.LIST, None,
       "TLS 1.2 cipher suites (IANA or OpenSSL names); empty: OpenSSL's defaults. "
       "TLS 1.3 suites cannot be restricted with Python's ssl module.", read_only=True),
    _d("ssl.keystore.type", T.STRING, "JKS",
       "PKCS12 or PEM (JKS: convert with keytool -importkeystore to PKCS12; a PKCS12 "
       "file under the default JKS type is read as PKCS12, as Java does).",
       choices=("JKS", "PKCS12", "PEM"), read_only=True),
    _d("ssl.keystore.location", T.STRING, None,
       "The broker's key and certificate chain (PKCS12 file, or PEM file with both).",
       read_only=True),
    _d("ssl.keystore.password", T.PASSWORD, None, "Password of the keystore file.",
       read_only=True),
    _d("ssl.key.password", T.PASSWORD, None,
       "Password of the private key (PEM: of the encrypted PKCS#8 key).", read_only=True),
    _d("ssl.keystore.key", T.PASSWORD, None,
       "PEM private key inline (ssl.keystore.type=PEM).", read_only=True),
    _d("ssl.keystore.certificate.chain", T.PASSWORD, None,
       "PEM certificate chain inline (ssl.keystore.type=PEM).", read_only=True),
    _d("ssl.truststore.type", T.STRING, "JKS", "PKCS12 or PEM (as ssl.keystore.type).",
       choices=("JKS", "PKCS12", "PEM"), read_only=True),
    _d("ssl.truststore.location", T.STRING, None,
       "Certificates of the CAs trusted for client (and peer broker) certificates.",
       read_only=True),
    _d("ssl.truststore.password", T.PASSWORD, None, "Password of the truststore file.",
       read_only=True),
    _d("ssl.truststore.certificates", T.PASSWORD, None,
       "PEM trusted certificates inline (ssl.truststore.type=PEM).", read_only=True),
    _d("ssl.client.auth", T.STRING, "none",
       "Client certificates: required, requested or none.",
       choices=("required", "requested", "none"), read_only=True),
    _d("ssl.endpoint.identification.algorithm", T.STRING, "https",
       "https: a broker connecting to a peer over TLS checks the peer's host name against "
       "its certificate; empty: it does not.", read_only=True),
    _d("ssl.principal.mapping.rules", T.STRING, "DEFAULT",
       "How a client certificate's distinguished name becomes a principal name: "
       "RULE:pattern/replacement/[LU],... and DEFAULT (the full DN).", read_only=True),
    _d("security.inter.broker.protocol", T.STRING, "PLAINTEXT",
       "Security protocol between brokers when inter.broker.listener.name is unset (its "
       "listener name is the protocol's name).",
       choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"), read_only=True),
    _d("inter.broker.listener.name", T.STRING, None,
       "The listener brokers connect to each other on.", read_only=True),
    _d("controller.listener.names", T.LIST, None,
       "A KRaft controller's listeners: listed in listeners but not bound (strom has no "
       "controller quorum).", read_only=True),
]

# SASL (docs/security.md "SASL"), Kafka's names and defaults. Each may be set for one
# listener as listener.name.<listener>.<setting>, and the ones Kafka reads per
# mechanism as listener.name.<listener>.<mechanism, lower case>.<setting>
# (strom/security/sasl/settings.py). Read at start-up.
SASL_CONFIGS: list[ConfigDef] = [
    _d("sasl.enabled.mechanisms", T.LIST, ["GSSAPI"],
       "SASL mechanisms of SASL listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER "
       "(GSSAPI, Kafka's default, is refused at start).", read_only=True),
    _d("sasl.jaas.config", T.PASSWORD, None,
       "JAAS login module of a mechanism; strom reads PlainLoginModule's user_<name> "
       "options (set it as listener.name.<l>.plain.sasl.jaas.config).", read_only=True),
    _d("sasl.mechanism.inter.broker.protocol", T.STRING, "GSSAPI",
       "SASL mechanism between brokers on a SASL inter-broker listener.", read_only=True),
    _d("sasl.server.callback.handler.class", T.STRING, None,
       "OAUTHBEARER: Kafka's OAuthBearerValidatorCallbackHandler (JWT validation against "
       "sasl.oauthbearer.jwks.endpoint.url), the only handler strom has.", read_only=True),
    _d("connections.max.reauth.ms", T.LONG, 0,
       "KIP-368: SASL sessions last at most this long, then the client re-authenticates "
       "on the same connection; 0: sessions do not expire.", at_least=0, read_only=True),
    _d("connection.failed.authentication.delay.ms", T.INT, 100,
       "Delay of the answer to a failed authentication (the connection then closes).",
       at_least=0, read_only=True),
    _d("sasl.oauthbearer.jwks.endpoint.url", T.STRING, None,
       "JWKS of the keys OAUTHBEARER tokens are signed with: file://, https:// or http://.",
       read_only=True),
    _d("sasl.oauthbearer.jwks.endpoint.refresh.ms", T.LONG, 3600000,
       "How often the JWKS is read again.", at_least=0, read_only=True),
    _d("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", T.LONG, 100,
       "Least time between JWKS reads for a token signed with an unknown key id.",
       at_least=0, read_only=True),
    _d("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", T.LONG, 10000,
       "Most time between JWKS read attempts after failures.", at_least=0, read_only=True),
    _d("sasl.oauthbearer.expected.audience", T.LIST, None,
       "Audiences a token's aud must name one of; unset: aud is not checked.",
       read_only=True),
    _d("sasl.oauthbearer.expected.issuer", T.STRING, None,
       "The iss a token must carry; unset: iss is not checked.", read_only=True),
    _d("sasl.oauthbearer.sub.claim.name", T.STRING, "sub",
       "The claim naming the principal.", read_only=True),
    _d("sasl.oauthbearer.scope.claim.name", T.STRING, "scope",
       "The claim holding the token's scopes.", read_only=True),
    _d("sasl.oauthbearer.clock.skew.seconds", T.INT, 30,
       "Clock difference tolerated in exp, iat and nbf.", at_least=0, read_only=True),
]

#: Kafka's default: each security protocol is also a listener name of itself.
DEFAULT_SECURITY_PROTOCOL_MAP = (
    "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
)
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


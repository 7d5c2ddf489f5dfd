"""SASL authentication as Kafka's brokers do it (SaslHandshake, SaslAuthenticate,
KIP-368 re-authentication): PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER.

Sans-I/O: a mechanism's server takes the client's bytes and returns the
server's; the per-connection state machine (authenticator.py) says which
requests a connection may send; the broker's connection and handlers drive
them. docs/security.md "SASL" describes the settings.
"""

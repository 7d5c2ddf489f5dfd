"""Kafka's security model: who a connection is (principals from TLS and SASL),
what it may do (ACLs, the authorizer) and how much (client quotas).

Below the broker: handlers and the connection ask this package; it knows the
metadata image (where SCRAM credentials, ACLs and quotas are stored) and
nothing of the broker, the coordinators or storage.
"""

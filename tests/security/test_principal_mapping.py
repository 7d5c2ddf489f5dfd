"""ssl.principal.mapping.rules (Kafka's SslPrincipalMapper grammar and
semantics, cases from its SslPrincipalMapperTest) and the RFC 2253 DN of a
certificate's subject as Java's X500Principal prints it."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from strom.errors import InvalidConfigError
from strom.security.principal_mapping import NoMatchingRuleError, PrincipalMapper, subject_dn


@pytest.mark.parametrize("rules", [
    "DEFAULT",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
    "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
    "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
    "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/,DEFAULT",
    "  RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/ ,  DEFAULT  ",
])
def test_valid_rules_parse(rules: str) -> None:
    assert PrincipalMapper.from_rules(rules).rules


@pytest.mark.parametrize("rules", [
    "default",
    "DEFAULT/L",
    "DEFAUL",
    "RULE:/",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
])
def test_invalid_rules_are_refused_with_the_setting_named(rules: str) -> None:
    with pytest.raises(InvalidConfigError, match="ssl.principal.mapping.rules"):
        PrincipalMapper.from_rules(rules)


def test_rules_apply_in_order_with_case_flags_and_default() -> None:
    mapper = PrincipalMapper.from_rules(
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,"
        "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,"
        "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U,"
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,"
        "DEFAULT")
    assert mapper.name("CN=Duke,OU=ServiceUsers,O=Org,C=US") == "Duke"
    assert mapper.name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US") == "duke@sme"
    assert mapper.name("cn=duke,ou=test,dc=example,dc=com") == "DUKE@TEST"
    dn = "OU=JavaSoft,O=Sun Microsystems,C=US"
    assert mapper.name(dn) == dn


def test_no_matching_rule_fails() -> None:
    mapper = PrincipalMapper.from_rules("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/")
    with pytest.raises(NoMatchingRuleError, match="OU=Other"):
        mapper.name("CN=Duke,OU=Other")


def test_back_references_past_the_groups_stay_literal() -> None:
    # Kafka's escapeLiteralBackReferences: $4 with three groups is the text "$4",
    # $12 with one group is group 1 then "2".
    mapper = PrincipalMapper.from_rules("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$4/,"
                                        "RULE:^CN=(.*?)$/$12/")
    assert mapper.name("CN=duke,OU=sme,O=org") == "duke@$4"
    assert mapper.name("CN=duke") == "duke2"


def test_escaped_slash_and_comma_in_a_rule() -> None:
    mapper = PrincipalMapper.from_rules(r"RULE:^CN=([^,]*)\/x,.*$/user\/$1/")
    assert mapper.name("CN=a/x,O=b") == "user/a"


def _certificate(*attributes: x509.NameAttribute[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(list(attributes))
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_subject_dn_is_rfc2253_most_specific_first_as_java_prints_it() -> None:
    der = _certificate(
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "eng"),
        x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
    )
    assert subject_dn(der) == r"CN=alice,OU=eng,O=Acme\, Inc,C=US"


def test_subject_dn_prints_unnamed_types_as_oid_and_der_hex() -> None:
    # Java: EMAILADDRESS is not among RFC 2253's keywords, so X500Principal
    # prints 1.2.840.113549.1.9.1=#<IA5String DER>.
    der = _certificate(
        x509.NameAttribute(NameOID.COMMON_NAME, "bob"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "b@x.io"),
    )
    assert subject_dn(der) == "1.2.840.113549.1.9.1=#16066240782e696f,CN=bob"

"""Kafka's ssl.principal.mapping.rules: how a client certificate's
distinguished name becomes the principal's name (sans-I/O).

    ssl.principal.mapping.rules=RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),.*$/$1/L,DEFAULT

Rules are tried in order; the first whose pattern matches the whole DN gives
the name (`$1`.. back-references, optional /L or /U to lower or upper case
it); DEFAULT gives the DN unchanged. A DN no rule matches fails the
authentication (Kafka's SslPrincipalMapper.NoMatchingRule). The parser
follows SslPrincipalMapper's grammar, so a value that Kafka accepts is
accepted here and one it refuses ("Invalid rule") is refused. Patterns are
Java regular expressions; the common subset (groups, classes, quantifiers,
anchors) reads the same in Python's `re`.

The DN is the certificate subject in RFC 2253 form, as Java's
X500Principal.getName() prints it: the most specific RDN first
("CN=alice,OU=eng,O=Acme,C=US"), attribute types CN, C, L, ST, O, OU,
STREET, DC, UID by name and others as dotted OIDs with a #hex DER value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from strom.errors import InvalidConfigError

DEFAULT_RULES = "DEFAULT"

# SslPrincipalMapper.RULE_PATTERN: DEFAULT | RULE:pattern/replacement/[LU] | anything else
# (an invalid rule). Backslash escapes a '/' or '\' within pattern and replacement.
_RULE = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_SPLITTER = re.compile(r"\s*(" + _RULE + r")\s*(?:,\s*|$)")
_PARSER = re.compile(_RULE)
_BACK_REFERENCE = re.compile(r"\$(\d+)")


class NoMatchingRuleError(Exception):
    """No rule applies to a DN: the client's authentication fails."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule; `pattern` None is DEFAULT."""

    pattern: re.Pattern[str] | None
    replacement: str = ""
    lower: bool = False
    upper: bool = False

    def apply(self, dn: str) -> str | None:
        if self.pattern is None:
            return dn
        if self.pattern.fullmatch(dn) is None:
            return None
        # Java's String.replaceAll over the whole DN with the same pattern.
        result = self.pattern.sub(_java_replacement(self.replacement, self.pattern.groups), dn)
        if self.lower:
            return result.lower()
        if self.upper:
            return result.upper()
        return result


def _java_replacement(replacement: str, groups: int) -> str:
    """A java.util.regex replacement string as a Python `re.sub` template.
    A back-reference past the pattern's groups is shortened digit by digit,
    then kept literal (Kafka's escapeLiteralBackReferences)."""
    out: list[str] = []
    i = 0
    while i < len(replacement):
        ch = replacement[i]
        if ch == "\\" and i + 1 < len(replacement):
            out.append(_escape(replacement[i + 1]))
            i += 2
            continue
        if ch == "$":
            match = _BACK_REFERENCE.match(replacement, i)
            if match is not None and groups > 0:
                digits = match.group(1)
                # Java reads as many digits as still name a group.
                taken = 1
                while (taken < len(digits) and int(digits[:taken + 1]) <= groups):
                    taken += 1
                index = int(digits[:taken])
                if index <= groups:
                    out.append(f"\\g<{index}>")
                    out.append(_escape(digits[taken:]))
                    i = match.start(1) + len(digits)
                    continue
            # No such group: Kafka keeps "$n" literally.
            out.append("$")
            i += 1
            continue
        out.append(_escape(ch))
        i += 1
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\")


@dataclass(frozen=True, slots=True)
class PrincipalMapper:
    rules: tuple[Rule, ...]

    @classmethod
    def from_rules(cls, text: str | None) -> PrincipalMapper:
        """Parse ssl.principal.mapping.rules; InvalidConfigError names the bad rule."""
        return cls(tuple(_parse(_split(text if text is not None else DEFAULT_RULES))))

    def name(self, dn: str) -> str:
        for rule in self.rules:
            name = rule.apply(dn)
            if name is not None:
                return name
        raise NoMatchingRuleError(f"no ssl.principal.mapping.rules rule applies to {dn}")


# The attribute types Java's X500Principal names in RFC 2253 output; the rest
# it prints as a dotted OID with the value's DER in hex.
_NAMED = frozenset({NameOID.COMMON_NAME, NameOID.COUNTRY_NAME, NameOID.LOCALITY_NAME,
                    NameOID.STATE_OR_PROVINCE_NAME, NameOID.ORGANIZATION_NAME,
                    NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.STREET_ADDRESS,
                    NameOID.DOMAIN_COMPONENT, NameOID.USER_ID})
# ASN.1 string types -> how their characters are encoded (tag numbers from X.680).
_STRING_ENCODINGS = {12: "utf-8", 19: "ascii", 20: "latin-1", 22: "ascii", 26: "ascii",
                     28: "utf-32-be", 30: "utf-16-be"}


def subject_dn(certificate_der: bytes) -> str:
    """The certificate's subject as Java's X500Principal.getName() gives it
    (RFC 2253), the DN Kafka's principal builder maps."""
    subject = x509.load_der_x509_certificate(certificate_der).subject
    return ",".join("+".join(_attribute(a) for a in rdn) for rdn in reversed(subject.rdns))


def _attribute(attribute: x509.NameAttribute[str | bytes]) -> str:
    if attribute.oid in _NAMED or isinstance(attribute.value, bytes):
        return attribute.rfc4514_string()
    tag = int(attribute._type.value)
    body = attribute.value.encode(_STRING_ENCODINGS.get(tag, "utf-8"))
    return f"{attribute.oid.dotted_string}=#{(_der_header(tag, len(body)) + body).hex()}"


def _der_header(tag: int, length: int) -> bytes:
    if length < 0x80:
        return bytes((tag, length))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size


def _split(text: str) -> list[str]:
    text = text.strip()
    rules: list[str] = []
    position = 0
    while position <= len(text):
        match = _SPLITTER.search(text, position)
        if match is None:
            break
        rules.append(match.group(1))
        if match.end() == position:
            # Java's Matcher.find moves past an empty match.
            position += 1
        else:
            position = match.end()
    return rules


def _parse(rules: list[str]) -> list[Rule]:
    parsed: list[Rule] = []
    for text in rules:
        match = _PARSER.match(text)
        if match is None or match.end() != len(text):
            rest = text[match.end():] if match is not None else text
            raise InvalidConfigError(f"ssl.principal.mapping.rules: invalid rule `{text}`, "
                                     f"unmatched substring: `{rest}`")
        if match.group(1) is not None:
            parsed.append(Rule(None))
        elif match.group(2) is not None:
            try:
                pattern = re.compile(match.group(2))
            except re.error as exc:
                raise InvalidConfigError(f"ssl.principal.mapping.rules: invalid pattern in "
                                         f"`{text}`: {exc}") from None
            flag = match.group(4)
            parsed.append(Rule(pattern, match.group(3), flag == "L", flag == "U"))
        elif match.group(5):
            raise InvalidConfigError(f"ssl.principal.mapping.rules: invalid rule `{text}`")
        # an empty rule is ignored, as Kafka does
    return parsed

"""Kafka's JAAS configuration syntax (`sasl.jaas.config`), parsed sans-I/O.

    <LoginModuleClass> <controlFlag> (<option>=<value>)* ;

as Kafka's JaasConfig reads it with Java's StreamTokenizer: words are letters,
digits, '.', '-', '_' and '$'; values are words or strings in double or single
quotes with Java's escapes (\\n, \\t, \\", \\\\, octal, and \\x for any other x);
`//` and `/* */` are comments. The control flag is required, requisite,
sufficient or optional (any case). Bad input raises InvalidConfigError with a
one-line message naming the setting, never the values (they hold passwords).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strom.errors import InvalidConfigError

CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"

_WORD_EXTRA = frozenset(".-_$")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True, slots=True)
class JaasEntry:
    login_module: str
    control_flag: str
    options: dict[str, str] = field(default_factory=dict)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in _WORD_EXTRA or ord(ch) >= 160


class _Tokens:
    """Java StreamTokenizer's view of the text: words, quoted strings, '=' and ';'."""

    def __init__(self, text: str, setting: str) -> None:
        self._text = text
        self._pos = 0
        self._setting = setting

    def fail(self, problem: str) -> InvalidConfigError:
        return InvalidConfigError(f"{self._setting}: {problem}")

    def _skip_blank(self) -> None:
        text, n = self._text, len(self._text)
        while self._pos < n:
            ch = text[self._pos]
            if ch.isspace():
                self._pos += 1
            elif text.startswith("//", self._pos):
                end = text.find("\n", self._pos)
                self._pos = n if end < 0 else end + 1
            elif text.startswith("/*", self._pos):
                end = text.find("*/", self._pos + 2)
                if end < 0:
                    raise self.fail("unterminated /* comment in JAAS config")
                self._pos = end + 2
            else:
                return

    def next(self) -> tuple[str, str] | None:
        """('word'|'quoted'|'punct', text), or None at the end."""
        self._skip_blank()
        text = self._text
        if self._pos >= len(text):
            return None
        ch = text[self._pos]
        if ch in "\"'":
            return "quoted", self._quoted(ch)
        if _is_word_char(ch):
            start = self._pos
            while self._pos < len(text) and _is_word_char(text[self._pos]):
                self._pos += 1
            return "word", text[start:self._pos]
        self._pos += 1
        return "punct", ch

    def _quoted(self, quote: str) -> str:
        text = self._text
        self._pos += 1
        out: list[str] = []
        while True:
            if self._pos >= len(text) or text[self._pos] == "\n":
                raise self.fail("unterminated quoted value in JAAS config")
            ch = text[self._pos]
            self._pos += 1
            if ch == quote:
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            if self._pos >= len(text):
                raise self.fail("unterminated quoted value in JAAS config")
            esc = text[self._pos]
            self._pos += 1
            if esc in "01234567":
                # Java: up to three octal digits, the value at most 0377.
                digits = esc
                limit = 3 if esc <= "3" else 2
                while (len(digits) < limit and self._pos < len(text)
                       and text[self._pos] in "01234567"):
                    digits += text[self._pos]
                    self._pos += 1
                out.append(chr(int(digits, 8)))
            else:
                out.append(_ESCAPES.get(esc, esc))


def parse_jaas_config(text: str, setting: str = "sasl.jaas.config") -> list[JaasEntry]:
    """Every login module entry of `text`; at least one."""
    tokens = _Tokens(text, setting)
    entries: list[JaasEntry] = []
    while (token := tokens.next()) is not None:
        kind, module = token
        if kind != "word":
            raise tokens.fail(f"expected a login module class name, found {module!r}")
        flag_token = tokens.next()
        if flag_token is None:
            raise tokens.fail("login module control flag not specified in JAAS config")
        if flag_token[0] != "word" or flag_token[1].lower() not in CONTROL_FLAGS:
            raise tokens.fail(f"invalid login module control flag {flag_token[1]!r} in JAAS "
                              f"config (expected one of {', '.join(CONTROL_FLAGS)})")
        options: dict[str, str] = {}
        while True:
            token = tokens.next()
            if token is None:
                raise tokens.fail("JAAS config entry not terminated by semi-colon")
            if token == ("punct", ";"):
                break
            if token[0] != "word":
                raise tokens.fail(f"expected an option name in JAAS config, found {token[1]!r}")
            key = token[1]
            equals, value = tokens.next(), tokens.next()
            if equals != ("punct", "=") or value is None or value[0] == "punct":
                raise tokens.fail(f"value not specified for key '{key}' in JAAS config")
            options[key] = value[1]
        entries.append(JaasEntry(module, flag_token[1].lower(), options))
    if not entries:
        raise tokens.fail("login module not specified in JAAS config")
    return entries


def parse_single_module(text: str, setting: str) -> JaasEntry:
    """`sasl.jaas.config` holds exactly one login module (Kafka's JaasContext)."""
    entries = parse_jaas_config(text, setting)
    if len(entries) != 1:
        raise InvalidConfigError(
            f"{setting}: JAAS config property contains {len(entries)} login modules, "
            "should be 1 module")
    return entries[0]


def plain_users(entry: JaasEntry) -> dict[str, str]:
    """PlainLoginModule's user_<name>="<password>" options (Kafka's
    PlainServerCallbackHandler), as {name: password}."""
    return {key[len("user_"):]: value for key, value in entry.options.items()
            if key.startswith("user_") and len(key) > len("user_")}

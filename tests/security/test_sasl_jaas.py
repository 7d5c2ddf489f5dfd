"""Kafka's JAAS syntax (sasl.jaas.config), parsed as Kafka's JaasConfig does."""

from __future__ import annotations

import pytest

from strom.errors import InvalidConfigError
from strom.security.sasl.jaas import (
    PLAIN_LOGIN_MODULE,
    parse_jaas_config,
    parse_single_module,
    plain_users,
)

KAFKA_DOCS_EXAMPLE = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required '
    'username="admin" password="admin-secret" user_admin="admin-secret" '
    'user_alice="alice-secret";')


def test_kafka_docs_example() -> None:
    entry = parse_single_module(KAFKA_DOCS_EXAMPLE, "sasl.jaas.config")
    assert entry.login_module == PLAIN_LOGIN_MODULE
    assert entry.control_flag == "required"
    assert entry.options["username"] == "admin"
    assert plain_users(entry) == {"admin": "admin-secret", "alice": "alice-secret"}


def test_quoting_escapes_comments_and_words() -> None:
    text = ("// a comment\n com.example.Module REQUIRED /* inline */ a=word_1.x-$ "
            "b='single \"quoted\"' c=\"tab\\there \\\"q\\\" back\\\\slash \\101\" d=\"\";")
    (entry,) = parse_jaas_config(text)
    assert entry.control_flag == "required"
    assert entry.options == {"a": "word_1.x-$", "b": 'single "quoted"',
                             "c": 'tab\there "q" back\\slash A', "d": ""}


def test_several_entries_and_flags() -> None:
    entries = parse_jaas_config("a.A optional x=\"1\"; b.B sufficient; c.C requisite;")
    assert [(e.login_module, e.control_flag) for e in entries] == [
        ("a.A", "optional"), ("b.B", "sufficient"), ("c.C", "requisite")]
    with pytest.raises(InvalidConfigError, match="contains 3 login modules, should be 1"):
        parse_single_module("a.A optional; b.B sufficient; c.C requisite;", "sasl.jaas.config")


@pytest.mark.parametrize(("text", "problem"), [
    ("", "login module not specified"),
    ("a.A", "control flag not specified"),
    ("a.A mandatory;", "invalid login module control flag 'mandatory'"),
    ('a.A required x="1"', "not terminated by semi-colon"),
    ("a.A required x=;", "value not specified for key 'x'"),
    ("a.A required x;", "value not specified for key 'x'"),
    ('a.A required x="unterminated;', "unterminated quoted value"),
    ("a.A required /* open", "unterminated /* comment"),
    ('a.A required "x"="1";', "expected an option name"),
])
def test_bad_input_is_one_line_naming_the_setting(text: str, problem: str) -> None:
    setting = "listener.name.sasl_plaintext.plain.sasl.jaas.config"
    with pytest.raises(InvalidConfigError) as info:
        parse_jaas_config(text, setting)
    message = str(info.value)
    assert message.startswith(setting + ": ") and problem in message
    assert "\n" not in message


def test_passwords_never_in_messages() -> None:
    with pytest.raises(InvalidConfigError) as info:
        parse_jaas_config('a.A required user_bob="s3cret-pw" oops', "sasl.jaas.config")
    assert "s3cret-pw" not in str(info.value)


def test_every_prefix_of_a_valid_config_fails_cleanly() -> None:
    # Truncated input anywhere: a config error, never another exception.
    for end in range(len(KAFKA_DOCS_EXAMPLE)):
        try:
            parse_jaas_config(KAFKA_DOCS_EXAMPLE[:end])
        except InvalidConfigError:
            pass

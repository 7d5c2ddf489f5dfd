"""Regular expressions that clients send: KIP-848 subscriptions (SubscribedTopicRegex)
and ListTransactions v2 id patterns (KIP-1152).

Kafka compiles both with RE2/J and matches whole names (`Matcher.matches()`). RE2 runs
in time linear in the input; Python's `re` backtracks, and `(a*)*c` against 30 "a"s
would take hours of the event loop, stalling every client. So both go through RE2
(google-re2), whose syntax is RE2/J's: backreferences and look-arounds are invalid
here as in Kafka, and answer INVALID_REGULAR_EXPRESSION.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints

from strom.coordinator.group.errors import InvalidRegularExpressionError


class _Compiled(Protocol):
    def fullmatch(self, text: str) -> object | None: ...


_OPTIONS = re2.Options()
# An invalid pattern is the client's mistake, answered with an error code; RE2 would
# also print it to stderr.
_OPTIONS.log_errors = False


@lru_cache(maxsize=256)
def _compile(pattern: str) -> _Compiled | str:
    """The compiled pattern, or RE2's reason it is invalid (cached too: a client
    retrying a bad pattern costs one dict look-up)."""
    try:
        compiled: _Compiled = re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return compiled


def full_matcher(pattern: str, what: str) -> Callable[[str], bool]:
    """A test of whether a whole name matches `pattern`; raises
    InvalidRegularExpressionError (naming `what`, e.g. "SubscribedTopicRegex") if the
    pattern is invalid."""
    compiled = _compile(pattern)
    if isinstance(compiled, str):
        raise InvalidRegularExpressionError(f"{what} {pattern} is invalid: {compiled}")
    fullmatch = compiled.fullmatch
    return lambda name: fullmatch(name) is not None


def check_regex(pattern: str, what: str) -> None:
    """Raise InvalidRegularExpressionError if `pattern` does not compile."""
    full_matcher(pattern, what)

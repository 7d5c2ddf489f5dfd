"""API key -> handler registry; ApiVersions is derived from it.

Each handler module registers itself with `@handles(ApiKey.X)`. The version
range defaults to the range Kafka defines for the API (kio's schemas), so
advertised and implemented versions never drift; a module may narrow it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.static.protocol import ResponsePayload

from strom.broker.context import RequestContext
from strom.protocol.api import ApiKey, known_versions

# A dict for kio to build, or a kio response (one relayed from the controller).
Response = Mapping[str, Any] | ResponsePayload | None
Handler = Callable[[RequestContext, Any], Awaitable[Response]]
#: A handler that may answer with what is left to wait for (parked.py).
ParkingHandler = Callable[[RequestContext, Any], Awaitable["Response | Parked"]]

if TYPE_CHECKING:
    from strom.broker.parked import Parked


@dataclass(frozen=True, slots=True)
class Registration:
    api_key: ApiKey
    min_version: int
    max_version: int
    handler: Handler
    # What ApiVersions claims, when it differs from what is handled (see produce.py).
    advertised_min_version: int | None = None
    # False for a broker-to-controller API (Kafka's "controller" listener
    # only): handled, but not listed in ApiVersions for clients.
    advertised: bool = True
    # The handler's parking form, which the connection uses where it can
    # park a response (parked.py); `handler` awaits what it returns.
    parking: ParkingHandler | None = None


REGISTRY: dict[int, Registration] = {}


def handles(api_key: ApiKey, *, min_version: int | None = None,
            max_version: int | None = None,
            advertised_min_version: int | None = None,
            advertised: bool = True,
            parking: ParkingHandler | None = None) -> Callable[[Handler], Handler]:
    known = known_versions(api_key)
    assert known is not None, api_key

    def register(fn: Handler) -> Handler:
        lo = known[0] if min_version is None else min_version
        hi = known[1] if max_version is None else max_version
        REGISTRY[api_key] = Registration(api_key, lo, hi, fn, advertised_min_version,
                                         advertised, parking)
        return fn

    return register


def load_handlers() -> Mapping[int, Registration]:
    """Import every module of strom.broker.handlers so each registers itself."""
    from strom.broker import handlers

    for module in pkgutil.iter_modules(handlers.__path__):
        importlib.import_module(f"{handlers.__name__}.{module.name}")
    return REGISTRY

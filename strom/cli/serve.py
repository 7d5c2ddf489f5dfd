"""`strom serve`: run a broker until SIGTERM or SIGINT, then shut down cleanly."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from strom.errors import KafkaError

EXAMPLES = """examples:
  strom serve                                   # localhost:9092, data in ./data
  strom serve --config config/server.properties
  strom serve --override listeners=PLAINTEXT://0.0.0.0:9093 --override num.partitions=6
"""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "serve", help="run a broker", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a strom broker. Configuration uses Apache Kafka's property names.",
    )
    parser.add_argument("--config", type=Path, help="a Kafka server.properties file")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="set a property, after the file (repeatable)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", choices=["text", "json"],
                        default=os.environ.get("STROM_LOG_FORMAT") or "text",
                        help="text lines, or one JSON object per line (time, level, logger, "
                             "message, extra fields); default $STROM_LOG_FORMAT or text")
    parser.set_defaults(run=run)


#: Exit code of a broker that cannot start as configured (as argparse's usage errors).
EXIT_CANNOT_START = 2
#: --log-format json: the start-up error is a JSON line too.
_JSON_ERRORS = False


def run(args: argparse.Namespace) -> int:
    from strom.cli.processes import process_count, supervise
    from strom.config import BrokerConfig
    from strom.log_format import configure

    global _JSON_ERRORS
    if args.log_format not in ("text", "json"):  # a STROM_LOG_FORMAT argparse did not check
        return _cannot_start(ValueError(f"STROM_LOG_FORMAT: {args.log_format!r} is neither "
                                        "text nor json"))
    _JSON_ERRORS = args.log_format == "json"
    configure(args.log_level, args.log_format)
    try:
        config = BrokerConfig.load(args.config, args.override)
        processes = process_count(config)
    except (KafkaError, OSError) as exc:
        return _cannot_start(exc)
    if processes > 1:  # one broker process per core (strom/cli/processes.py)
        argv = [*(["--config", str(args.config)] if args.config else []),
                *(x for item in args.override for x in ("--override", item)),
                "--log-level", args.log_level, "--log-format", args.log_format]
        try:
            return supervise(config, processes, argv)
        except KafkaError as exc:
            return _cannot_start(exc)
    _raise_open_file_limit()
    # No cyclic GC while the broker loads and starts (its collections over the
    # growing heap of imports were ~5 ms of start-up): _tune_gc freezes what
    # start-up built and turns it back on.
    gc.disable()
    try:
        from strom.broker.server import Broker

        try:
            import uvloop

            uvloop.install()
        except ImportError:  # uvloop is optional off Linux/macOS
            pass
        return asyncio.run(_serve(Broker(config)))
    finally:
        gc.enable()


def _raise_open_file_limit() -> None:
    """Each segment holds a few fds (log, and mmap'd indexes): raise the soft
    limit to the hard one, as Kafka's documentation asks operators to."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cannot_start(exc: BaseException) -> int:
    """One line naming what is wrong and where, no traceback: these are the
    operator's to fix (a setting, a file, a port), not bugs."""
    text = str(exc) if not isinstance(exc, OSError) or not exc.strerror else (
        f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}")
    message = f"strom serve: error: {' '.join(text.split())}"
    if _JSON_ERRORS:
        logging.getLogger(__name__).error(message)  # a JSON line like every other
    else:
        print(message, file=sys.stderr, flush=True)
    return EXIT_CANNOT_START


async def _serve(broker: Any) -> int:
    from strom.broker.server import StartupError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await broker.start()
    except (StartupError, KafkaError, OSError) as exc:
        return _cannot_start(exc)
    _tune_gc()
    print(f"strom: serving on {broker.bootstrap}", flush=True)
    await stop.wait()
    await broker.stop()
    return 0


def _tune_gc() -> None:
    """Keep the cyclic GC off the request path (the process's, so `strom serve`
    only, not an embedded broker).

    Every in-flight request holds tens of GC-tracked objects (tasks, frames,
    response dicts) until its fsync completes. With the default thresholds
    (700, 10, 10) they outlive gen0 and gen1, so full collections ran over
    every object of the process 2-3 times a second: in a 50-producer acks=all
    soak the GC took 55% of the event loop (gc callbacks: 5.5 s per 10 s),
    which made the broker fall behind, which kept more requests in flight:
    a collapse it never recovered from. Freezing what start-up built (modules,
    configs, metadata) takes it out of every later collection, and a gen0
    threshold of 50,000 lets a request's objects die by reference count before
    any collection sees them. Cycles are still collected, only less often.

    No collection comes first: start-up leaves ~170 objects of garbage (mostly
    the classes dataclass(slots=True) replaces with new ones), frozen with the
    rest (idle RSS unchanged), where a full collection to find them took 13 ms
    of start-up before the first client was answered (issue 19). `strom serve`
    runs start-up with the GC off, as gc.freeze's documentation suggests.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    gc.enable()

"""The message browser (from beginning / end / offset / timestamp, filters,
JSON-lines download) and the produce form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from multidict import MultiMapping

from strom.console.cluster import ConsoleError, TopicInfo
from strom.console.common import CLUSTER, form_int, render, run
from strom.console.messages import PREVIEW_CHARS, Filter, Message

#: Most records one page shows (or one download holds).
MAX_LIMIT = 1000
STARTS = ("beginning", "end", "offset", "timestamp")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/topics/{topic}/messages", browse, name="messages")
    app.router.add_get("/topics/{topic}/messages.jsonl", download)
    app.router.add_post("/topics/{topic}/produce", produce)


@dataclass
class Query:
    partition: int | None
    start: str
    offset: int
    timestamp: int
    limit: int
    filter: Filter


def parse_query(q: MultiMapping[str], topic: TopicInfo) -> Query:
    """The browser form's fields, checked; a ConsoleError (400) names a bad one."""
    start = q.get("start", "end")
    if start not in STARTS:
        raise ConsoleError(f"start: choose one of {', '.join(STARTS)}")
    partition_text = q.get("partition", "").strip()
    partition = None
    if partition_text not in ("", "all"):
        partition = form_int(partition_text, "partition", maximum=len(topic.partitions) - 1)
    offset = form_int(q.get("offset"), "offset") if start == "offset" else 0
    timestamp = parse_time(q.get("timestamp", "")) if start == "timestamp" else 0
    limit = form_int(q.get("limit"), "limit", minimum=1, maximum=MAX_LIMIT, default=50)
    flt = Filter(key=q.get("key", ""), text=q.get("text", ""), path=q.get("path", "").strip(),
                 equals=q.get("equals", ""))
    return Query(partition, start, offset, timestamp, limit, flt)


def parse_time(text: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 time (UTC unless it says)."""
    text = text.strip()
    if not text:
        raise ConsoleError("timestamp: a time is required (ISO 8601 or epoch milliseconds)")
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConsoleError(f"timestamp: {text!r} is neither ISO 8601 (2024-05-01T12:00:00Z) "
                           "nor epoch milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


async def _read(request: web.Request, topic: TopicInfo, query: Query) -> tuple[list[Message], int]:
    cluster = request.app[CLUSTER]
    parts = [p for p in topic.partitions
             if query.partition is None or p.partition == query.partition]
    stop = {p.partition: p.latest for p in parts}
    if query.start == "beginning":
        starts = {p.partition: p.earliest for p in parts}
    elif query.start == "end":
        starts = {p.partition: max(p.earliest, p.latest - query.limit) for p in parts}
    elif query.start == "offset":
        starts = {p.partition: max(p.earliest, query.offset) for p in parts}
    else:
        starts = await run(cluster.offsets_for_time, topic.name,
                           [p.partition for p in parts], query.timestamp)
    return await run(cluster.read, topic.name, starts, query.limit, stop,
                     accept=query.filter or None, newest=query.start == "end")


async def browse(request: web.Request) -> web.StreamResponse:
    name = request.match_info["topic"]
    topic = await run(request.app[CLUSTER].topic, name)
    context: dict[str, object] = {
        "title": f"Messages in {name}", "topic": topic, "q": request.query,
        "messages": None, "scanned": 0, "preview": PREVIEW_CHARS,
        "produced": request.query.get("produced"), "download": None}
    if "start" in request.query:
        try:
            query = parse_query(request.query, topic)
        except ConsoleError as exc:
            context["error"] = str(exc)
            return render(request, "messages.html", context, status=400)
        messages, scanned = await _read(request, topic, query)
        context.update(messages=messages, scanned=scanned,
                       download=f"/topics/{name}/messages.jsonl?{request.query_string}")
    return render(request, "messages.html", context)


async def download(request: web.Request) -> web.StreamResponse:
    name = request.match_info["topic"]
    topic = await run(request.app[CLUSTER].topic, name)
    query = parse_query(request.query, topic)
    messages, _ = await _read(request, topic, query)
    body = "".join(json.dumps(m.as_json(), ensure_ascii=False) + "\n" for m in messages)
    return web.Response(text=body, content_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="{name}.jsonl"'})


def parse_headers(text: str) -> list[tuple[str, bytes]]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise ConsoleError(f"header line {line.strip()!r}: expected name: value")
        out.append((key.strip(), value.strip().encode()))
    return out


async def produce(request: web.Request) -> web.StreamResponse:
    name = request.match_info["topic"]
    cluster = request.app[CLUSTER]
    form = await request.post()
    fields = {k: str(v) for k, v in form.items()}
    try:
        topic = await run(cluster.topic, name, offsets=False)
        partition_text = fields.get("partition", "").strip()
        partition = (None if partition_text in ("", "any") else
                     form_int(partition_text, "partition", maximum=len(topic.partitions) - 1))
        headers = parse_headers(fields.get("headers", ""))
        key = fields.get("key", "")
        written = await run(cluster.produce, name, key=key.encode() if key else None,
                            value=fields.get("value", "").encode(), headers=headers,
                            partition=partition)
    except ConsoleError as exc:
        if exc.status == 404:
            raise
        topic = await run(cluster.topic, name)
        return render(request, "messages.html", {
            "title": f"Messages in {name}", "topic": topic, "q": {}, "messages": None,
            "scanned": 0, "preview": PREVIEW_CHARS, "produced": None, "download": None,
            "form": fields, "error": str(exc)}, status=exc.status)
    raise web.HTTPSeeOther(f"/topics/{name}/messages?produced={written[0]}:{written[1]}"
                           f"&start=end&partition={written[0]}")

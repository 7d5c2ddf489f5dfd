"""Consumer group pages: list, one group (members, assignments, committed /
end offset / lag per partition, live lag chart), reset offsets (a dry run
first, then apply), delete."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from aiohttp import web
from confluent_kafka import TopicPartition

from strom.console.cluster import Cluster, ConsoleError, Group, spec
from strom.console.common import CLUSTER, form_int, render, run, sse
from strom.console.pages_messages import parse_time

RESETS = ("earliest", "latest", "offset", "timestamp", "shift")
#: Group states Kafka lets offsets be changed in (no live members).
_INACTIVE = ("EMPTY", "DEAD", "UNKNOWN")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/groups", groups, name="groups")
    app.router.add_get("/views", views, name="views")
    # Group ids may hold any character, "/" too (links quote it as %2F).
    app.router.add_post("/groups/{group:.+}/reset", reset)
    app.router.add_post("/groups/{group:.+}/delete", delete)
    app.router.add_get("/groups/{group:.+}", group, name="group")
    app.router.add_get("/events/groups/{group:.+}", group_events)


#: Groups whose members and lag the list page looks up (three requests each).
LIST_DETAIL_LIMIT = 100


async def groups(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    ids = await run(cluster.group_ids)
    details = await asyncio.gather(*(run(cluster.group, g) for g, _ in
                                     ids[:LIST_DETAIL_LIMIT]), return_exceptions=True)
    found: list[object] = [*details, *[None] * (len(ids) - len(details))]
    rows = [(g, state, d if isinstance(d, Group) else None)
            for (g, state), d in zip(ids, found, strict=True)]
    return render(request, "groups.html", {"title": "Consumer groups", "groups": rows,
                                           "limit": LIST_DETAIL_LIMIT,
                                           "deleted": request.query.get("deleted")})


#: strom.views commits a view's source offsets under this group id (with no
#: members) when its outputs go through Kafka transactions; that is all a view
#: tells the broker (an outbox view keeps its offsets in its own store).
VIEW_GROUP_PREFIX = "strom-view-"
_VIEW_HELPERS = ("-outbox", "-query")


def view_name(group_id: str) -> str | None:
    if not group_id.startswith(VIEW_GROUP_PREFIX) or group_id.endswith(_VIEW_HELPERS):
        return None
    return group_id[len(VIEW_GROUP_PREFIX):] or None


async def views(request: web.Request) -> web.StreamResponse:
    """strom.views views that report to the broker: name, position, lag, state."""
    cluster = request.app[CLUSTER]
    ids = await run(cluster.group_ids)
    rows = []
    for group_id, _ in ids:
        name = view_name(group_id)
        if name is None:
            continue
        info = await run(cluster.group, group_id)
        rows.append((name, info))
    return render(request, "views.html", {"title": "Views", "views": rows})


async def group(request: web.Request) -> web.StreamResponse:
    group_id = request.match_info["group"]
    info = await run(request.app[CLUSTER].group, group_id)
    return render(request, "group.html", _context(info, reset_done=request.query.get("reset")))


def _context(info: Group, **extra: Any) -> dict[str, Any]:
    topics = sorted({p.topic for p in info.partitions})
    context: dict[str, Any] = {"title": f"Group {info.group_id}", "group": info,
                               "topics": topics, "plan": None, "form": {}, "reset_done": None}
    context.update(extra)
    return context


async def group_events(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    group_id = request.match_info["group"]

    def sample() -> dict[str, Any]:
        info = cluster.group(group_id)
        return {"state": info.state, "lag_total": info.total_lag,
                "members": len(info.members),
                "rows": [{"topic": p.topic, "partition": p.partition,
                                "committed": p.committed, "end": p.end, "lag": p.lag}
                               for p in info.partitions]}

    return await sse(request, sample)


def plan_reset(cluster: Cluster, info: Group, topic: str, to: str,
               value: str) -> list[tuple[str, int, int | None, int]]:
    """(topic, partition, current, new) for every partition the reset moves;
    new offsets are clamped to the log's range, as kafka-consumer-groups does."""
    parts = [p for p in info.partitions if topic in ("", "*") or p.topic == topic]
    if not parts:
        raise ConsoleError(f"group {info.group_id!r} has no committed offsets"
                           + (f" for topic {topic!r}" if topic not in ("", "*") else ""))
    tps = [TopicPartition(p.topic, p.partition) for p in parts]
    earliest = cluster.offsets(tps, spec("earliest"))
    latest = cluster.offsets(tps, spec("latest"))
    if to == "timestamp":
        ts = parse_time(value)
        found = cluster.offsets(tps, spec("timestamp", ts))
    target: dict[tuple[str, int], int] = {}
    for p in parts:
        key = (p.topic, p.partition)
        low, high = earliest.get(key, 0), latest.get(key, 0)
        if to == "earliest":
            new = low
        elif to == "latest":
            new = high
        elif to == "offset":
            new = form_int(value, "offset")
        elif to == "shift":
            try:
                new = (p.committed if p.committed is not None else high) + int(value.strip())
            except ValueError:
                raise ConsoleError(f"shift by: {value.strip()!r} is not a whole number") from None
        else:
            new = found.get(key, -1)
            new = high if new < 0 else new
        target[key] = min(max(new, low), high)
    return [(p.topic, p.partition, p.committed, target[(p.topic, p.partition)]) for p in parts]


async def reset(request: web.Request) -> web.StreamResponse:
    """Without apply=1: a dry run showing each partition's current and new offset.
    With it: the same plan, computed again and committed."""
    cluster = request.app[CLUSTER]
    group_id = request.match_info["group"]
    form = await request.post()
    fields = {k: str(v) for k, v in form.items()}
    info = await run(cluster.group, group_id)
    to = fields.get("to", "")
    try:
        if to not in RESETS:
            raise ConsoleError(f"reset to: choose one of {', '.join(RESETS)}")
        plan = await run(plan_reset, cluster, info, fields.get("topic", ""), to,
                         fields.get("value", ""))
        if fields.get("apply") == "1":
            if info.state.upper() not in _INACTIVE:
                raise ConsoleError(
                    f"group {group_id!r} is {info.state} with {len(info.members)} member(s): "
                    "Kafka only resets the offsets of a group without members; stop its "
                    "consumers first")
            await run(cluster.set_group_offsets, group_id,
                      {(t, p): new for t, p, _, new in plan})
            raise web.HTTPSeeOther(f"/groups/{quote(group_id, safe='')}?reset={len(plan)}")
    except ConsoleError as exc:
        return render(request, "group.html", _context(info, form=fields, error=str(exc)),
                      status=exc.status)
    return render(request, "group.html", _context(info, form=fields, plan=plan))


async def delete(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    group_id = request.match_info["group"]
    form = await request.post()
    info = await run(cluster.group, group_id)
    if str(form.get("confirm", "")).strip() != group_id:
        return render(request, "group.html", _context(
            info, error=f"type the group's name ({group_id}) to confirm deletion"), status=400)
    await run(cluster.delete_group, group_id)
    raise web.HTTPSeeOther(f"/groups?deleted={quote(group_id, safe='')}")

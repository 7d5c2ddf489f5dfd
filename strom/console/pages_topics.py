"""Topic pages: list, create, one topic's partitions, configs (show, edit one),
delete with a confirmation step."""

from __future__ import annotations

import re

from aiohttp import web

from strom.console.cluster import ConsoleError
from strom.console.common import CLUSTER, form_int, render, run

#: Kafka's legal topic names (Topic.LEGAL_CHARS, at most 249 characters).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/topics", topics, name="topics")
    app.router.add_post("/topics", create)
    app.router.add_get("/topics/{topic}", topic, name="topic")
    app.router.add_get("/topics/{topic}/configs", configs, name="configs")
    app.router.add_post("/topics/{topic}/configs", set_config)
    app.router.add_get("/topics/{topic}/delete", confirm_delete)
    app.router.add_post("/topics/{topic}/delete", delete)


async def topics(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    info = await run(cluster.overview)
    sizes = await run(cluster.sizes, info.brokers)
    return render(request, "topics.html", {"title": "Topics", "info": info,
                                           "sizes": topic_sizes(sizes),
                                           "form": {}, "created": request.query.get("created"),
                                           "deleted": request.query.get("deleted")})


async def create(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    form = await request.post()
    fields = {k: str(v) for k, v in form.items()}
    name = fields.get("name", "").strip()
    try:
        if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
            raise ConsoleError(f"topic name {name!r}: use 1-249 of a-z A-Z 0-9 . _ -")
        partitions = form_int(fields.get("partitions"), "partitions", minimum=1,
                              maximum=100000, default=1)
        replication = form_int(fields.get("replication_factor"), "replication factor",
                               minimum=1, maximum=32767, default=1)
        configs = _parse_configs(fields.get("configs", ""))
        await run(cluster.create_topic, name, partitions, replication, configs)
    except ConsoleError as exc:
        info = await run(cluster.overview)
        return render(request, "topics.html", {"title": "Topics", "info": info, "sizes": {},
                                               "form": fields, "error": str(exc),
                                               "created": None, "deleted": None},
                      status=exc.status)
    raise web.HTTPSeeOther(f"/topics/{name}?created=1")


def topic_sizes(sizes: dict[tuple[str, int], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (topic, _), size in sizes.items():
        out[topic] = out.get(topic, 0) + size
    return out


def _parse_configs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConsoleError(f"config line {line.strip()!r}: expected name=value")
        out[key.strip()] = value.strip()
    return out


async def topic(request: web.Request) -> web.StreamResponse:
    name = request.match_info["topic"]
    cluster = request.app[CLUSTER]
    info = await run(cluster.topic, name)
    brokers = (await run(cluster.overview)).brokers
    sizes = await run(cluster.sizes, brokers)
    return render(request, "topic.html", {"title": f"Topic {name}", "topic": info,
                                          "sizes": sizes,
                                          "created": request.query.get("created")})


async def configs(request: web.Request, *, error: str | None = None,
                  status: int = 200) -> web.StreamResponse:
    name = request.match_info["topic"]
    rows = await run(request.app[CLUSTER].topic_configs, name)
    return render(request, "configs.html", {
        "title": f"Configs of {name}", "topic_name": name, "rows": rows, "error": error,
        "changed": request.query.get("changed")}, status=status)


async def set_config(request: web.Request) -> web.StreamResponse:
    name = request.match_info["topic"]
    form = await request.post()
    key = str(form.get("name", "")).strip()
    value = str(form.get("value", ""))
    reset = form.get("action") == "reset"
    if not key:
        return await configs(request, error="choose a config to change", status=400)
    try:
        await run(request.app[CLUSTER].set_topic_config, name, key, None if reset else value)
    except ConsoleError as exc:
        if exc.status == 404:
            raise
        return await configs(request, error=str(exc), status=exc.status)
    raise web.HTTPSeeOther(f"/topics/{name}/configs?changed={key}")


async def confirm_delete(request: web.Request) -> web.StreamResponse:
    name = request.match_info["topic"]
    info = await run(request.app[CLUSTER].topic, name)
    return render(request, "delete_topic.html", {"title": f"Delete {name}", "topic": info})


async def delete(request: web.Request) -> web.StreamResponse:
    """Deletes only when the typed name matches: the confirmation step."""
    name = request.match_info["topic"]
    form = await request.post()
    if str(form.get("confirm", "")).strip() != name:
        info = await run(request.app[CLUSTER].topic, name)
        return render(request, "delete_topic.html", {
            "title": f"Delete {name}", "topic": info,
            "error": f"type the topic's name ({name}) to confirm"}, status=400)
    await run(request.app[CLUSTER].delete_topic, name)
    raise web.HTTPSeeOther(f"/topics?deleted={name}")

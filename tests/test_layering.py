"""The import rules of DESIGN.md ("Layers", "Layout", "Ownership"), checked on
the source: every `import` / `from ... import` in strom/, wherever it sits (a
function body or an `if TYPE_CHECKING:` block is still a dependency), is
matched against the rules below. A rule names the importing modules, the
modules they must not import, and the few importers allowed anyway.

Parsed with `ast`, not by importing strom: no side effects, about 0.1 s.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "strom"


@dataclass(frozen=True)
class Rule:
    name: str
    importers: tuple[str, ...]  # module prefixes the rule applies to
    forbidden: tuple[str, ...]  # module prefixes they must not import
    allowed: tuple[str, ...] = ()  # forbidden prefixes that are fine after all
    exempt: tuple[str, ...] = ()  # importers the rule does not apply to


RULES = (
    Rule("handlers reach partitions through Partition / ReplicaManager, never storage",
         ("strom.broker.handlers",), ("strom.storage",)),
    Rule("only the composition root picks the single-node metadata store",
         ("strom",), ("strom.cluster.local",),
         # `strom storage format` writes a single node's first metadata before
         # it ever starts (kafka-storage format's bootstrap records).
         exempt=("strom.broker.server", "strom.cluster.local", "strom.cli.storage")),
    Rule("only the composition root picks the etcd metadata store",
         ("strom",), ("strom.cluster.etcd_store", "strom.cluster.etcd_session"),
         # etcd_snapshots is a part of the etcd store (its snapshot writes are
         # fenced by the controller's candidacy, an etcd_session type).
         exempt=("strom.broker.server", "strom.cluster.etcd_store",
                 "strom.cluster.etcd_snapshots")),
    Rule("coordinators see partitions through protocols, not storage or broker modules",
         ("strom.coordinator",), ("strom.storage", "strom.broker")),
    Rule("protocol is sans-I/O and knows nothing else of strom",
         ("strom.protocol",), ("strom",), allowed=("strom.protocol", "strom.errors")),
    Rule("storage knows the record format and shared types only",
         ("strom.storage",), ("strom",),
         allowed=("strom.storage", "strom.protocol", "strom.errors", "strom.clock")),
    Rule("nothing imports the broker except its entry points",
         ("strom",), ("strom.broker",),
         exempt=("strom.broker", "strom.cli.serve", "strom.testing")),
    Rule("cluster metadata sits below the broker and the coordinators",
         ("strom.cluster",), ("strom.broker", "strom.coordinator")),
    Rule("security sits below the broker: it knows the metadata image, not the "
         "broker, the coordinators or storage",
         ("strom.security",), ("strom.broker", "strom.coordinator", "strom.storage")),
    Rule("cluster metadata stores security records as plain values",
         ("strom.cluster",), ("strom.security",)),
)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every strom import in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from strom.cluster import local` imports strom.cluster.local.
            found.append((target, node.lineno))
            found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names)
    return [(name, line) for name, line in found if _under(name, ("strom",))]


def _graph() -> dict[str, list[tuple[str, int]]]:
    return {_module_name(p): _imports(p) for p in sorted(SOURCE.rglob("*.py"))}


GRAPH = _graph()


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_import_rule(rule: Rule) -> None:
    violations = []
    for module, imports in GRAPH.items():
        if not _under(module, rule.importers) or _under(module, rule.exempt):
            continue
        for imported, line in imports:
            if _under(imported, rule.forbidden) and not _under(imported, rule.allowed):
                violations.append(f"{module}:{line} imports {imported}")
    assert not violations, rule.name + ":\n  " + "\n  ".join(sorted(set(violations)))


def test_the_rules_see_the_imports() -> None:
    """A guard on the checker itself: it finds the imports it must judge."""
    assert any(name == "strom.cluster.local" for name, _ in GRAPH["strom.broker.server"])
    assert any(_under(name, ("strom.storage",)) for name, _ in GRAPH["strom.broker.partition"])

#!/usr/bin/env python3
"""Turn `go test -json` output of franz-go's pkg/kgo suite into a report.

    report.py --events RUN.jsonl --src FRANZ_GO_DIR --out results.json \
        [--meta KEY=VALUE ...] [--compare OTHER.json] [--markdown OUT.md]

Writes a JSON results file and prints a markdown table of the top-level tests:
result (pass/fail/skip), duration, whether the test talks to a broker, and for
failures the first error line. Standard library only: it must run before any
virtualenv exists.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

# Test helpers in pkg/kgo that dial KGO_SEEDS. A test that can reach one of
# these (through the test files' own functions) needs a broker.
SEED_ROOTS = {"getSeedBrokers", "testClientOpts", "newTestClient", "adm"}
# SASL tests dial their own listener (KGO_TEST_SCRAM_SEEDS, KGO_TEST_OAUTH_SEEDS).
SEED_VARS = re.compile(r"\b(scramSeeds|oauthSeeds)\b")

ERROR_LINE = re.compile(r"^\s*[\w.-]+_test\.go:\d+: ")
PANIC_LINE = re.compile(r"^(panic: |fatal error: )")
TIMEOUT_LINE = re.compile(r"^panic: test timed out after (\S+)", re.M)


def broker_tests(kgo_dir: Path) -> dict[str, bool]:
    """Map each Test function to whether it (transitively) dials the broker.

    A regex call graph over the package's *_test.go files, functions and
    methods kept apart (`x.name(` can only be a method): over-approximate (a
    method name shared by two types counts for both), which errs on the side
    of "needs a broker".
    """
    bodies: dict[tuple[bool, str], str] = {}
    start = re.compile(r"^func (\([^)]*\) )?(\w+)\s*(?:\[[^\]]*\])?\(", re.M)
    for path in sorted(kgo_dir.glob("*_test.go")):
        text = path.read_text()
        marks = list(start.finditer(text))
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            key = (m.group(1) is not None, m.group(2))
            if key != (False, "init"):
                bodies[key] = bodies.get(key, "") + text[m.end() : end]

    def callees(body: str) -> set[tuple[bool, str]]:
        return {
            (dot == ".", name) for dot, name in re.findall(r"(\.?)\b(\w+)\(", body)
        } & bodies.keys()

    needs = {
        key
        for key, body in bodies.items()
        if {n for d, n in re.findall(r"(\.?)\b(\w+)\(", body) if not d} & SEED_ROOTS
        or SEED_VARS.search(body)
    } | {(False, r) for r in SEED_ROOTS if (False, r) in bodies}
    graph = {key: callees(body) for key, body in bodies.items()}
    changed = True
    while changed:
        changed = False
        for key, out in graph.items():
            if key not in needs and out & needs:
                needs.add(key)
                changed = True
    return {
        name: (False, name) in needs
        for (method, name) in bodies
        if not method and name.startswith("Test")
    }


# What is kept of a test's output: a failing TestTxnEtl once logged 5.4 GB, and
# reading it whole grew this process to 15 GB. The report needs the first error
# lines and, after a timeout, the goroutine dump at the end; so per test it keeps
# the first HEAD_LINES lines, the first ERRORS_KEPT error or panic lines, and
# the last TAIL_LINES lines, each cut at LINE_CHARS characters.
HEAD_LINES = 200
TAIL_LINES = 4000
ERRORS_KEPT = 50
LINE_CHARS = 2000


class Output:
    """A bounded view of one test's (or the package's) output lines."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.errors: list[str] = []
        self.total = 0

    def append(self, line: str) -> None:
        line = line[:LINE_CHARS]
        self.total += 1
        if len(self.errors) < ERRORS_KEPT and (ERROR_LINE.search(line) or PANIC_LINE.search(line)):
            self.errors.append(line)
        if len(self.head) < HEAD_LINES:
            self.head.append(line)
        else:
            self.tail.append(line)

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def lines(self) -> list[str]:
        """Head and tail, with a marker where lines were dropped."""
        gap = [f"[report.py: {self.dropped} lines not kept]"] if self.dropped else []
        return self.head + gap + list(self.tail)

    def error_lines(self) -> list[str]:
        """The first error and panic lines, then the rest of what was kept."""
        return self.errors + self.lines()


def parse_events(path: Path) -> tuple[dict[str, dict], Output, bool]:
    """Return (tests, package-level output, build failed), reading the events one
    line at a time."""
    tests: dict[str, dict] = {}
    pkg_output = Output()
    build_failed = False
    order = 0
    with path.open(errors="replace") as events:
        for raw in events:
            raw = raw.rstrip("\n")
            if not raw.startswith("{"):
                pkg_output.append(raw)
                continue
            try:
                ev = json.loads(raw)
            except json.JSONDecodeError:
                pkg_output.append(raw)
                continue
            action = ev.get("Action")
            if action in ("build-output", "build-fail"):
                build_failed |= action == "build-fail"
                if ev.get("Output"):
                    pkg_output.append(ev["Output"].rstrip("\n"))
                continue
            name = ev.get("Test")
            if not name:
                if action == "output":
                    pkg_output.append(ev.get("Output", "").rstrip("\n"))
                continue
            t = tests.get(name)
            if t is None:
                order += 1
                t = tests[name] = {
                    "name": name,
                    "result": None,
                    "elapsed": None,
                    "output": Output(),
                    "order": order,
                }
            if action == "output":
                t["output"].append(ev.get("Output", "").rstrip("\n"))
            elif action in ("pass", "fail", "skip"):
                t["result"] = action
                t["elapsed"] = ev.get("Elapsed")
    return tests, pkg_output, build_failed


# franz-go's own bookkeeping lines, printed by every failed test: not the error.
NOISE = re.compile(r"FAILED TESTING -- NOT DELETING|: \S+ completed in \S+$")


def first_error(lines: list[str]) -> str | None:
    for pat in (ERROR_LINE, PANIC_LINE):
        for line in lines:
            if pat.search(line) and not NOISE.search(line):
                return line.strip()
    return None


def stuck_where(lines: list[str], test: str) -> str | None:
    """After a timeout panic, where the test's own goroutine was blocked:
    "(*Client).Flush at producer.go:1494, from consumer_test.go:1033"."""
    text = "\n".join(lines)
    if "panic: test timed out" not in text:
        return None
    for block in re.split(r"\n\s*\n", text):
        rows = [r.strip() for r in block.splitlines()]
        for i, row in enumerate(rows):
            if re.search(rf"\.{re.escape(test)}(\.func\d+)*(\.\d+)*\(", row) and i + 1 < len(rows):
                caller = rows[i + 1].split()[0].rsplit("/", 1)[-1]
                if not re.match(r"^goroutine \d+", rows[0]) or len(rows) < 3:
                    return None
                top_func = rows[1].rsplit("/", 1)[-1].split("(0x")[0].removeprefix("kgo.")
                top_at = rows[2].split()[0].rsplit("/", 1)[-1]
                if i == 1:
                    return f"blocked in the test body at {caller}"
                return f"blocked in {top_func} at {top_at}, from {caller}"
    return None


def skip_reason(lines: list[str]) -> str | None:
    for line in lines:
        if ERROR_LINE.search(line):
            return line.strip()
    return None


def build_results(
    events: Path,
    src: Path,
    listed: list[str] | None,
    crashed: list[str],
    stopped: str | None = None,
    capped: list[str] | None = None,
) -> dict:
    tests, pkg, build_failed = parse_events(events)
    if build_failed:
        raise SystemExit(
            "report.py: the test package did not build:\n" + "\n".join(pkg.lines()[-40:])
        )
    needs_broker = broker_tests(src / "pkg" / "kgo")
    # Error and panic lines of everything (a timeout panic is one of them).
    everything = pkg.errors + [line for t in tests.values() for line in t["output"].errors]
    timed_out = next(
        (m.group(1) for line in everything for m in [TIMEOUT_LINE.search(line)] if m), None
    )
    crash = next((line.strip() for line in everything if PANIC_LINE.search(line)), None)

    top = sorted((n for n in tests if "/" not in n), key=lambda n: tests[n]["order"])
    # Tests the selection should have run but that never started: the test
    # binary died first (a panic, or the package timeout).
    top += [n for n in (listed or []) if n not in tests]
    rows = []
    for name in top:
        t = tests.get(
            name, {"result": None, "elapsed": None, "output": Output(), "order": 0, "missing": True}
        )
        subs = [
            tests[s]
            for s in sorted(tests, key=lambda s: tests[s]["order"])
            if s.startswith(name + "/")
        ]
        out: Output = t["output"]
        result = t["result"]
        note = None
        timeout_panic = next(
            (m for line in out.errors for m in [TIMEOUT_LINE.search(line)] if m), None
        )
        if t.get("missing"):
            result = "not run"
            note = stopped or "never started: the test binary died first"
        elif result is None:
            # Started (or paused waiting for a parallel slot) but never
            # finished: the binary was killed by the timeout or crashed.
            result = "incomplete"
            if timed_out:
                dump = (
                    out.lines() + [x for sub in subs for x in sub["output"].lines()] + pkg.lines()
                )
                where = stuck_where(dump, name)
                note = f"did not finish: go test timed out after {timed_out}" + (
                    f"; {where}" if where else ""
                )
            else:
                note = "did not finish: " + (
                    first_error(out.error_lines()) or crash or "the test binary exited"
                )
        elif result == "fail" and timeout_panic:
            where = stuck_where(out.lines(), name)
            note = f"timed out after {timeout_panic.group(1)}" + (f"; {where}" if where else "")
        elif result == "fail":
            failed = [sub for sub in subs if sub["result"] == "fail"]
            note = first_error(out.error_lines()) or next(
                (e for sub in failed for e in [first_error(sub["output"].error_lines())] if e), None
            )
            if failed:
                note = f"{note or ''} [{len(failed)} of {len(subs)} subtests failed]".strip()
        elif result == "skip":
            note = skip_reason(out.error_lines())
        if name in (capped or []):
            note = "its output was cut off at --max-test-output, which stopped it" + (
                f"; {note}" if note else ""
            )
        if name in crashed:
            note = "THE BROKER EXITED during this test" + (f"; {note}" if note else "")
        rows.append(
            {
                "test": name,
                "result": result,
                "seconds": round(t["elapsed"], 2) if t["elapsed"] is not None else None,
                "broker": needs_broker.get(name, True),
                "first_error" if result == "fail" else "note": note,
                "subtests": {s["name"][len(name) + 1 :]: s["result"] or "incomplete" for s in subs},
            }
        )
    if not any(r["result"] in ("incomplete", "not run") for r in rows):
        timed_out = crash = None  # a "panic:" line a passing test printed on purpose
    return {
        "tests": rows,
        "timed_out": timed_out,
        "crash": None if timed_out else crash,
        "broker_exited_during": crashed,
    }


RESULTS = ("pass", "fail", "skip", "incomplete", "not run")


def summarize(rows: list[dict]) -> dict:
    out: dict[str, dict[str, int]] = {}
    for scope, sel in (("all", rows), ("broker", [r for r in rows if r["broker"]])):
        out[scope] = {k: sum(1 for r in sel if r["result"] == k) for k in RESULTS}
    return out


def counts(c: dict[str, int]) -> str:
    text = f"{c['pass']} passed, {c['fail']} failed, {c['skip']} skipped"
    extra = [f"{c[k]} {k}" for k in ("incomplete", "not run") if c.get(k)]
    return text + (" (" + ", ".join(extra) + ")" if extra else "")


def cell(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(res: dict, compare: dict | None) -> str:
    meta = res["meta"]
    s = res["summary"]
    lines = [
        f"franz-go {meta.get('franz_go', '?')} pkg/kgo against {meta.get('broker', '?')}"
        f" ({meta.get('date', '?')}, {meta.get('wall_seconds', '?')} s wall)",
        "",
        f"- tests that use the broker: {counts(s['broker'])}",
        f"- all tests in pkg/kgo: {counts(s['all'])}",
        "",
    ]
    other = {r["test"]: r for r in compare["tests"]} if compare else {}
    cmp_label = compare["meta"].get("broker_short", "baseline") if compare else None
    head = ["Test", "Result", "Seconds"] + ([cmp_label] if compare else []) + ["Error / note"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in res["tests"]:
        if not r["broker"]:
            continue
        row = [f"`{r['test']}`", r["result"], "" if r["seconds"] is None else f"{r['seconds']:.2f}"]
        if compare:
            row.append(other.get(r["test"], {}).get("result", "—"))
        row.append(cell(r.get("first_error") or r.get("note")))
        lines.append("| " + " | ".join(row) + " |")
    unit = [r for r in res["tests"] if not r["broker"]]
    bad = [r for r in unit if r["result"] == "fail"]
    if unit:
        lines.append("")
        what = "test that never dials" if len(unit) == 1 else "tests that never dial"
        lines.append(
            f"{len(unit)} {what} the broker"
            f" (client-side unit tests) {'is' if len(unit) == 1 else 'are'} left out of the table: "
            + counts(summarize(unit)["all"])
            + ("; failed: " + ", ".join(f"`{r['test']}`" for r in bad) if bad else "")
            + "."
        )
    if (res.get("timed_out") or res.get("crash")) and str(meta.get("mode", "package")).startswith(
        "package"
    ):
        lines.append("")
        lines.append(
            "The test binary died ("
            + (
                f"timed out after {res['timed_out']}"
                if res.get("timed_out")
                else cell(res["crash"])
            )
            + "): rerun with --isolate to give every test its own process and timeout."
        )
    if res.get("broker_exited_during"):
        lines.append("")
        lines.append(
            "The broker exited during: "
            + ", ".join(f"`{t}`" for t in res["broker_exited_during"])
            + "."
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--classify":
        # report.py --classify FRANZ_GO_DIR: "broker NAME" or "unit NAME" per test.
        for name, broker in broker_tests(Path(sys.argv[2]) / "pkg" / "kgo").items():
            print("broker" if broker else "unit", name)
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=Path, required=True, help="go test -json output")
    ap.add_argument("--src", type=Path, required=True, help="franz-go module source directory")
    ap.add_argument("--out", type=Path, required=True, help="results JSON to write")
    ap.add_argument("--meta", action="append", default=[], help="KEY=VALUE recorded under meta")
    ap.add_argument("--compare", type=Path, help="another results JSON to show a column of")
    ap.add_argument("--markdown", type=Path, help="also write the markdown table here")
    ap.add_argument(
        "--listed", type=Path, help="file of the test names selected to run (kgo.test -test.list)"
    )
    ap.add_argument("--crashed", type=Path, help="file of the tests during which the broker exited")
    ap.add_argument(
        "--stopped", type=Path, help="file with why the run stopped before the last test"
    )
    ap.add_argument("--capped", type=Path, help="file of the tests whose output run.sh cut off")
    args = ap.parse_args()

    listed = args.listed.read_text().split() if args.listed else None
    crashed = (
        args.crashed.read_text().splitlines() if args.crashed and args.crashed.exists() else []
    )
    stopped = args.stopped.read_text().strip() if args.stopped and args.stopped.exists() else None
    capped = args.capped.read_text().split() if args.capped and args.capped.exists() else []
    res = build_results(
        args.events, args.src, listed, [c for c in crashed if c.strip()], stopped or None, capped
    )
    meta: dict[str, object] = {}
    for kv in args.meta:
        k, _, v = kv.partition("=")
        meta[k] = int(v) if v.isdigit() else v
    res = {"meta": meta, "summary": summarize(res["tests"]), **res}
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    compare = None
    if args.compare and args.compare.exists() and args.compare.resolve() != args.out.resolve():
        compare = json.loads(args.compare.read_text())
    md = markdown(res, compare)
    if args.markdown:
        args.markdown.write_text(md)
    sys.stdout.write(md)
    if not res["tests"]:
        print("report.py: no test ran", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

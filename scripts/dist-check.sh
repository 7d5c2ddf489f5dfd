#!/bin/sh
# `make dist-check`: install the wheel `make dist` built into a fresh virtualenv,
# the way a project adds strom to its test dependencies, and use it there:
# pip must not warn (license metadata, deprecated forms), `strom --version`
# answers, and strom.testing.EmbeddedBroker starts and takes a record through
# confluent-kafka. Then the sdist is offered to an unsupported Python (3.10,
# when one is installed) to show the message users get. Needs PyPI for the
# dependencies. About a minute.
set -eu
PYTHON=${PYTHON:-python3}
wheel=$(ls dist/strom-*.whl | head -n 1)
sdist=$(ls dist/strom-*.tar.gz | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install "$wheel" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
if grep -i -E 'warning|deprecat' "$work/pip.log"; then
    echo "dist-check: pip warned while installing $wheel (above)" >&2
    exit 1
fi
echo "dist-check: $wheel installed without warnings"
"$work/venv/bin/strom" --version
# Outside the checkout, so the installed copy is the one imported.
cd "$work"
"$work/venv/bin/python" - <<'PY'
import strom, strom.protocol.records as records, strom.testing
from confluent_kafka import Consumer, Producer

assert "/venv/" in strom.__file__, strom.__file__
try:
    from strom.protocol.records import _walk  # the C extension, built into the wheel
except ImportError as exc:
    raise SystemExit(f"dist-check: the wheel has no C extension: {exc}")
with strom.testing.EmbeddedBroker() as broker:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce("dist-check", b"hello")
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "dist-check",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["dist-check"])
    message = None
    for _ in range(100):
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            break
    consumer.close()
    assert message is not None and message.value() == b"hello", message
print("dist-check: strom.testing.EmbeddedBroker served a record from the installed wheel")
PY
cd - >/dev/null

old=""
for candidate in python3.10 "$HOME/.pyenv/versions/3.10.13/bin/python3.10"; do
    if "$candidate" -c "import sys; assert sys.version_info[:2] == (3, 10)" 2>/dev/null; then
        old=$candidate
        break
    fi
done
if [ -n "$old" ]; then
    echo "dist-check: what pip says on Python 3.10:"
    if "$old" -m pip install --dry-run --no-deps "$sdist" >"$work/old.log" 2>&1; then
        cat "$work/old.log"; echo "dist-check: Python 3.10 accepted $sdist" >&2; exit 1
    fi
    grep -E "requires a different Python" "$work/old.log"
fi
echo "dist-check: ok"

"""The shop, live: strom and four services that only talk through events.

    make demo                                    # or:
    .venv/bin/python -m examples.shop.demo [--bootstrap HOST:PORT] [--pace 1.0]

Starts a strom broker (`strom serve`, in a temporary directory) unless given
--bootstrap, then the orders, customers and shipping services as separate
processes, and plays a scenario, narrating each step:

 1. customers register (one of them is an old, version-1 record, upcast on read)
 2. orders are placed; shipping ships them to addresses from its own view
 3. a customer moves; the change reaches shipping; the next order goes there
 4. shipping is killed (kill -9); orders keep being accepted
 5. shipping comes back and ships every missed order, exactly once
 6. a statistics service nobody planned for starts and reads the whole history
"""

from __future__ import annotations

import argparse
import collections
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from examples.shop.events import CUSTOMER_UPDATES, SHIPMENTS, CustomerChangedV1, legacy
from examples.shop.web import call
from strom.views import Publisher, ensure_topic

ROOT = Path(__file__).resolve().parents[2]


class Process:
    """A child process whose first line says it is ready ("... ready on URL")."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> Process:
        log = open(self.log_path, "a")  # noqa: SIM115 - the pump thread writes it for as long as the process lives
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                lines.put(line)
                log.write(line)
                log.flush()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see "
                                   f"{self.log_path}:\n{self.log_path.read_text()[-1500:]}")
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if " ready on " in line or "serving on" in line:
                self.url = line.strip().split()[-1]
                return self
        raise TimeoutError(f"{self.name} not ready within {timeout:g}s ({self.log_path})")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, bootstrap: str | None, workdir: Path, pace: float) -> None:
        self.workdir = workdir
        self.pace = pace
        self.processes: list[Process] = []
        self.step = 0
        self.bootstrap = bootstrap or ""
        self.started_broker = bootstrap is None

    # --- narration -----------------------------------------------------------------------

    def chapter(self, title: str, text: str) -> None:
        self.step += 1
        print(f"\n== {self.step}. {title} ==", flush=True)
        print(textwrap.fill(" ".join(text.split()), 88), flush=True)
        time.sleep(self.pace)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    # --- processes -----------------------------------------------------------------------

    def service(self, module: str, *extra: str) -> Process:
        name = module
        argv = [sys.executable, "-m", f"examples.shop.{module}", "--bootstrap", self.bootstrap,
                "--port", "0", "--log-level", "WARNING", *extra]
        proc = Process(name, argv, self.workdir).start()
        self.processes.append(proc)
        self.say(f"{name:10} up at {proc.url} (pid {proc.proc.pid if proc.proc else '?'})")
        return proc

    def start_broker(self) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "strom", "serve", "--log-level", "WARNING",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                "--override", f"log.dirs={self.workdir / 'strom-data'}",
                "--override", "num.partitions=3"]
        broker = Process("strom", argv, self.workdir).start()
        self.processes.append(broker)
        self.bootstrap = f"127.0.0.1:{port}"
        pid = broker.proc.pid if broker.proc else "?"
        self.say(f"strom      up at {self.bootstrap} (pid {pid})")

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    # --- helpers -------------------------------------------------------------------------

    def place(self, orders: Process, customer: str, sku: str, qty: int, cents: int) -> str:
        status, body = call("POST", f"{orders.url}/orders",
                            {"customer_id": customer,
                             "lines": [{"sku": sku, "quantity": qty, "unit_price_cents": cents}]})
        if status != 201:
            raise RuntimeError(f"order refused: {status} {body}")
        self.say(f"order {body['order_id']} for {customer}: {qty} x {sku} "
                 f"-> accepted (orders/{body['partition']} @ {body['offset']})")
        return str(body["order_id"])

    def wait_caught_up(self, service: Process, timeout: float = 30.0) -> None:
        status, body = call("GET", f"{service.url}/health/caught-up?timeout={timeout}",
                            timeout=timeout + 5)
        if status != 200:
            raise RuntimeError(f"{service.name} did not catch up: {status} {body}")

    def shipments(self, shipping: Process) -> dict[str, Any]:
        status, body = call("GET", f"{shipping.url}/shipments")
        if status != 200:
            raise RuntimeError(f"shipping: {status} {body}")
        return {s["order_id"]: s for s in body["shipments"]}

    # --- the scenario --------------------------------------------------------------------

    def run(self) -> None:
        self.chapter("Start", """strom is one process; each service is another. The services
            know the broker's address and the event types, and nothing about each other.""")
        if self.started_broker:
            self.start_broker()
        else:
            self.say(f"using the broker at {self.bootstrap}")
        ensure_topic(self.bootstrap, CUSTOMER_UPDATES, partitions=3,
                     config={"cleanup.policy": "compact"})
        with Publisher(self.bootstrap, legacy) as old_system:
            old_system.publish(CUSTOMER_UPDATES, CustomerChangedV1(
                "carol", "Carol", "12 Old Mill Lane, 1010 Vienna"), key="carol")
        self.say("an old system left a version-1 record for 'carol' in customer-updates "
                 "(address as one line)")
        orders = self.service("orders")
        customers = self.service("customers")
        shipping_dir = self.workdir / "shipping"
        shipping = self.service("shipping", "--data-dir", str(shipping_dir))

        self.chapter("Customers register", """The customers service publishes every change to
            the compacted topic customer-updates, keyed by customer id. Shipping builds its
            own view of addresses from that topic.""")
        for cid, name, street, city, zip_code in [
                ("alice", "Alice", "1 Main Street", "Springfield", "12345"),
                ("bob", "Bob", "7 Harbour Road", "Portsmouth", "PO1 3AH")]:
            status, body = call("POST", f"{customers.url}/customers",
                                {"customer_id": cid, "name": name,
                                 "address": {"street": street, "city": city, "zip": zip_code}})
            self.say(f"customer {cid}: {status} {body['address']}")

        self.chapter("Orders are placed", """The orders service accepts each order and
            publishes OrderPlaced to 'orders'. It does not call shipping or customers.""")
        placed = [self.place(orders, "alice", "teapot", 1, 2500),
                  self.place(orders, "bob", "green-tea", 3, 450),
                  self.place(orders, "carol", "cups", 6, 300)]
        self.wait_caught_up(shipping)
        shipments = self.shipments(shipping)
        for oid in placed:
            s = shipments[oid]
            self.say(f"shipping: {s['shipment_id']} for {s['customer_id']} to {s['address_line']}")
        self.say("(carol's address came from the version-1 record, upcast to the new schema)")

        self.chapter("Alice moves", """The customers service publishes the change. Shipping
            learns of it from customer-updates, eventually; orders placed afterwards ship to
            the new address.""")
        call("PUT", f"{customers.url}/customers/alice/address",
             {"street": "99 New Road", "city": "Shelbyville", "zip": "54321"})
        deadline = time.monotonic() + 15
        while True:
            status, address = call("GET", f"{shipping.url}/addresses/alice")
            if status == 200 and address["street"] == "99 New Road":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"shipping never saw alice's new address: {address}")
            time.sleep(0.05)
        self.say(f"shipping's view now has alice at {address['street']}, {address['city']}")
        moved = self.place(orders, "alice", "kettle", 1, 3900)
        self.wait_caught_up(shipping)
        self.say(f"shipping: {moved} goes to {self.shipments(shipping)[moved]['address_line']}")

        self.chapter("Shipping goes down", """kill -9: no clean shutdown. Orders keep being
            accepted: the orders service never depended on shipping. They wait in the log.""")
        shipping.kill()
        self.processes.remove(shipping)
        self.say("shipping killed")
        missed = [self.place(orders, c, sku, q, p) for c, sku, q, p in [
            ("bob", "teapot", 1, 2500), ("carol", "green-tea", 2, 450),
            ("alice", "cups", 4, 300), ("bob", "kettle", 1, 3900), ("alice", "honey", 2, 800)]]

        self.chapter("Shipping comes back", """It resumes from the offsets stored in its own
            SQLite file, in the same transactions as its shipments, so it ships every order it
            missed, and none twice.""")
        shipping = self.service("shipping", "--data-dir", str(shipping_dir))
        self.wait_caught_up(shipping)
        shipments = self.shipments(shipping)
        for oid in missed:
            s = shipments[oid]
            self.say(f"shipping: {s['shipment_id']} for {s['customer_id']} to {s['address_line']}")
        all_orders = placed + [moved] + missed
        assert sorted(shipments) == sorted(all_orders), "shipments do not match orders"
        published = collections.Counter(count_shipments_published(self.bootstrap))
        twice = [oid for oid, n in published.items() if n > 1]
        self.say(f"{len(shipments)} orders, {len(shipments)} shipments; in the 'shipments' "
                 f"topic: {sum(published.values())} records, {len(twice)} duplicates")

        self.chapter("Statistics, added late", """A new service nobody planned for. It reads
            the whole 'orders' history from the beginning and serves totals; nothing else
            changes.""")
        stats_service = self.service("statistics")
        self.wait_caught_up(stats_service)
        status, stats = call("GET", f"{stats_service.url}/stats")
        self.say(f"orders: {stats['orders']}, items: {stats['items']}, revenue: "
                 f"{stats['revenue_cents'] / 100:.2f}")
        for cid, c in sorted(stats["customers"].items()):
            self.say(f"  {cid:6} {c['orders']} orders, {c['revenue_cents'] / 100:8.2f}")
        assert stats["orders"] == len(all_orders)

        self.chapter("Done", """Every order shipped once, across a crash, with no service
            calling another. Each service is a plain program: python -m
            examples.shop.shipping --help. Run the demo with --keep to keep every
            process's log.""")


def count_shipments_published(bootstrap: str) -> list[str]:
    """Order ids of every record in 'shipments' (read from the beginning)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "shop-demo-audit",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        parts = consumer.list_topics(SHIPMENTS, timeout=10).topics[SHIPMENTS].partitions
        consumer.assign([TopicPartition(SHIPMENTS, p, OFFSET_BEGINNING) for p in parts])
        keys: list[str] = []
        done: set[int] = set()
        deadline = time.monotonic() + 20
        while len(done) < len(parts) and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    keys.append((msg.key() or b"").decode())
                else:
                    done.add(msg.partition() or 0)
        return keys
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="use this broker instead of starting strom")
    parser.add_argument("--pace", type=float, default=0.8,
                        help="seconds to pause at each chapter (0: no pauses)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="strom-shop-"))
    demo = Demo(args.bootstrap, workdir, args.pace)
    try:
        demo.run()
        return 0
    except (RuntimeError, TimeoutError, AssertionError) as exc:
        print(f"\ndemo failed: {exc}\nlogs: {workdir}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        demo.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

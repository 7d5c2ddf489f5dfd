#!/usr/bin/env python3
"""Produce and consume over plaintext, TLS and SASL_SSL, strom and Apache
Kafka, on the same machine in the same run (issue 16).

  .venv/bin/python bench/tls.py                       # 2 rounds, 300,000 x 1 KiB
  .venv/bin/python bench/tls.py --rounds 3 --records 500000 --brokers strom
  .venv/bin/python bench/tls.py --modes plaintext,tls

Each broker serves PLAINTEXT, SSL and SASL_SSL listeners (PKCS12 keystore,
TLS 1.3, no client certificates; SASL PLAIN) from one process; Kafka's ProducerPerformance
(acks=1) and ConsumerPerformance run against each listener with the same
settings, the broker started fresh every round, brokers alternating. Figures
are medians over rounds; the last column is TLS/plaintext of the same broker,
and the strom/Kafka ratios are printed after the table. The broker's CPU
seconds per GiB moved (its process's user+system time over each phase) are
printed too: on a busy machine they hold where MiB/s does not.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brokers import Kafka, Strom  # noqa: E402
from common import JAVA_PERF_OPTS, KAFKA_TOOL, free_port, log, run_client  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.serialization import pkcs12  # noqa: E402
from workloads import PERF_LINE  # noqa: E402

from strom.testing.tls import TestCertificateAuthority  # noqa: E402

PASSWORD = "benchpass"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule required"
MODES = ("plaintext", "tls", "sasl_ssl")


class Stores:
    """A throw-away CA, the brokers' PKCS12 keystore and the clients' truststore."""

    def __init__(self, directory: Path) -> None:
        ca = TestCertificateAuthority(directory)
        pem = ca.server_keystore_path.read_bytes()
        key = serialization.load_pem_private_key(pem, None)
        chain = x509.load_pem_x509_certificates(pem)
        self.keystore = directory / "broker.p12"
        self.keystore.write_bytes(pkcs12.serialize_key_and_certificates(
            b"broker", key, chain[0], chain[1:],  # type: ignore[arg-type]
            serialization.BestAvailableEncryption(PASSWORD.encode())))
        self.truststore = directory / "truststore.p12"
        subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file",
                        str(ca.ca_path), "-keystore", str(self.truststore), "-storetype",
                        "PKCS12", "-storepass", PASSWORD], check=True, capture_output=True)
        self.client_configs: dict[str, Path] = {}
        for mode in ("tls", "sasl_ssl"):
            path = self.client_configs[mode] = directory / f"client-{mode}.properties"
            path.write_text("".join(f"{k}={v}\n" for k, v in self.client(mode).items()))

    def broker(self) -> dict[str, str]:
        """TLS for both TLS listeners; SASL PLAIN for the SASL_SSL one (Kafka's names)."""
        return {"ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(self.keystore),
                "ssl.keystore.password": PASSWORD, "ssl.key.password": PASSWORD,
                "sasl.enabled.mechanisms": "PLAIN",
                "listener.name.sasl_ssl.plain.sasl.jaas.config":
                    f"{PLAIN} username=\"bench\" password=\"{PASSWORD}\" "
                    f"user_bench=\"{PASSWORD}\";"}

    def client(self, mode: str) -> dict[str, str]:
        if mode == "plaintext":
            return {}
        tls = {"security.protocol": "SSL", "ssl.truststore.type": "PKCS12",
               "ssl.truststore.location": str(self.truststore),
               "ssl.truststore.password": PASSWORD}
        if mode == "tls":
            return tls
        return {**tls, "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": f"{PLAIN} username=\"bench\" password=\"{PASSWORD}\";"}


class StromTls(Strom):
    def __init__(self, stores: Stores, *args: Any) -> None:
        super().__init__(*args)
        self.stores = stores
        self.ports: dict[str, int] = {}

    def command(self) -> list[str]:
        self.ports = {"plaintext": self.port, "tls": free_port(), "sasl_ssl": free_port()}
        self.extra.update({"listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                                        f"SSL://127.0.0.1:{self.ports['tls']},"
                                        f"SASL_SSL://127.0.0.1:{self.ports['sasl_ssl']}",
                           **self.stores.broker()})
        return super().command()


class KafkaTls(Kafka):
    def __init__(self, stores: Stores, *args: Any) -> None:
        super().__init__(*args)
        self.stores = stores
        self.ports: dict[str, int] = {}

    def prepare(self) -> None:
        super().prepare()
        # Later lines win in a properties file: the TLS listeners beside the others.
        self.ports = {"plaintext": self.port, "tls": free_port(), "sasl_ssl": free_port()}
        served = (f"PLAINTEXT://127.0.0.1:{self.port},SSL://127.0.0.1:{self.ports['tls']},"
                  f"SASL_SSL://127.0.0.1:{self.ports['sasl_ssl']}")
        extra = {
            "listeners": f"{served},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": served,
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
                                              "SASL_SSL:SASL_SSL",
            **self.stores.broker(),
        }
        with self.config_path.open("a") as out:
            out.write("".join(f"{k}={v}\n" for k, v in extra.items()))


def produce(bootstrap: str, topic: str, records: int, size: int, config: Path | None) -> float:
    """ProducerPerformance's MiB/s, acks=1; the client's security settings from
    a file (a JAAS value holds '=', which --command-property cannot carry)."""
    argv = [KAFKA_TOOL, "producer-perf", "--bootstrap-server", bootstrap, "--topic", topic,
            "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
            "--command-property", "acks=1", "--reporting-interval", "2000"]
    if config is not None:
        argv += ["--command-config", str(config)]
    run = run_client(argv, 600, env={"KAFKA_TOOL_JAVA_OPTS": JAVA_PERF_OPTS})
    matches = PERF_LINE.findall(run.stdout)
    if run.returncode != 0 or not matches or int(matches[-1][0]) < records:
        raise RuntimeError(f"producer-perf failed: {run.stdout[-500:]} {run.stderr[-500:]}")
    return float(matches[-1][1]) * size / 1048576


def consume(bootstrap: str, topic: str, records: int, config: Path | None) -> float:
    """ConsumerPerformance's fetch MiB/s."""
    argv = [KAFKA_TOOL, "consumer-perf", "--bootstrap-server", bootstrap, "--topic", topic,
            "--num-records", str(records), "--timeout", "30000",
            "--group", f"bench-tls-{int(time.time() * 1000)}"]
    if config is not None:
        argv += ["--command-config", str(config)]
    run = run_client(argv, 600, env={"KAFKA_TOOL_JAVA_OPTS": JAVA_PERF_OPTS})
    rows = [ln.split(",") for ln in run.stdout.splitlines()
            if ln.count(",") >= 9 and not ln.startswith("start.time")]
    if run.returncode != 0 or not rows or int(float(rows[-1][4])) < records:
        raise RuntimeError(f"consumer-perf failed: {run.stdout[-500:]} {run.stderr[-500:]}")
    return float(rows[-1][8])


def one_round(broker: StromTls | KafkaTls, stores: Stores, records: int,
              size: int, modes: list[str]) -> dict[str, float]:
    broker.start()
    try:
        figures = {}
        for mode in modes:
            bootstrap = f"127.0.0.1:{broker.ports[mode]}"
            config = stores.client_configs.get(mode)
            topic = f"tls-bench-{mode}"
            gib = records * size / (1 << 30)
            cpu = broker.cpu_s()
            figures[f"produce_{mode}"] = produce(bootstrap, topic, records, size, config)
            figures[f"produce_cpu_{mode}"] = (broker.cpu_s() - cpu) / gib
            cpu = broker.cpu_s()
            figures[f"consume_{mode}"] = consume(bootstrap, topic, records, config)
            figures[f"consume_cpu_{mode}"] = (broker.cpu_s() - cpu) / gib
            log(f"{broker.label} {mode}: produce {figures[f'produce_{mode}']:.1f} MiB/s "
                f"({figures[f'produce_cpu_{mode}']:.1f} broker CPU s/GiB), consume "
                f"{figures[f'consume_{mode}']:.1f} MiB/s "
                f"({figures[f'consume_cpu_{mode}']:.1f} CPU s/GiB)")
        return figures
    finally:
        broker.stop()
        broker.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--brokers", default="strom,kafka")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="listeners measured: plaintext,tls,sasl_ssl")
    args = parser.parse_args()
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="strom-tls-bench-") as tmp:
        root = Path(tmp)
        stores = Stores(root / "certs")
        makers: dict[str, type[StromTls] | type[KafkaTls]] = {"strom": StromTls,
                                                               "kafka": KafkaTls}
        names = args.brokers.split(",")
        results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for round_no in range(args.rounds):
            order = names if round_no % 2 == 0 else list(reversed(names))
            for name in order:
                broker = makers[name](stores, root / f"{name}-{round_no}", 1, 1 << 30)
                results[name].append(one_round(broker, stores, args.records, args.size, modes))
    print(f"\n{args.records:,} records x {args.size} B, acks=1, 1 partition, median of "
          f"{args.rounds} rounds\n")
    medians = {name: {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
               for name, rounds in results.items()}
    for title, key in (("MiB/s", "{op}_{mode}"),
                       ("broker CPU s/GiB (its user+system time over the phase; holds on a "
                        "busy machine where MiB/s does not)", "{op}_cpu_{mode}")):
        print(f"{title}\n")
        print("| broker | " + " | ".join(f"{op} {mode}" for op in ("produce", "consume")
                                         for mode in modes) + " |")
        print("|---" * (1 + 2 * len(modes)) + "|")
        for name, m in medians.items():
            cells = []
            for op in ("produce", "consume"):
                base = m[key.format(op=op, mode=modes[0])]
                for mode in modes:
                    value = m[key.format(op=op, mode=mode)]
                    cells.append(f"{value:.1f}" if mode == modes[0]
                                 else f"{value:.1f} ({value / base:.2f}x)")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()
    if {"strom", "kafka"} <= medians.keys():
        s, k = medians["strom"], medians["kafka"]
        print("\nstrom/Kafka: " + ", ".join(f"{key} {s[key] / k[key]:.2f}" for key in s))
    return 0


if __name__ == "__main__":
    sys.exit(main())

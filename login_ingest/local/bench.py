"""The benchmark: the handler's cost per record beside what Postgres and Python cannot avoid.

Everything runs in one process against one server, in rounds that interleave the cases, so
that the ratios between them hold on a noisy machine; each figure is the median of the
rounds. Results go to .local/bench/results.json and a plot to .local/bench/benchmark.png.

    python -m login_ingest.local.bench            # or: make bench
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import hmac
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2.extras import execute_values

from login_ingest.batch import LoginBatchProcessor
from login_ingest.config import Settings
from login_ingest.local.context import LocalLambdaContext
from login_ingest.local.generator import generate
from login_ingest.local.postgres import LocalPostgres
from login_ingest.masking import Masker
from login_ingest.parsing import parse_login
from login_ingest.storage import COLUMNS, LoginRow, LoginStore, apply_schema, copy_text
from login_ingest.vault import new_local_key

REPO = Path(__file__).resolve().parents[2]
MASKING_KEY = "benchmark-masking-key-0123456789abcdefghijk"
BENCH_DB = "login_ingest_bench"
SENT = "1733234400000"
SMALL_CALLS = 100
BARE_SMALL = f"bare 10-row INSERT, x{SMALL_CALLS}"
HANDLER_SMALL = f"handler 10 valid, warm, x{SMALL_CALLS}"


def sqs_event(bodies: list[str], prefix: str) -> dict[str, Any]:
    return {"Records": [
        {"messageId": f"{prefix}-{i}", "receiptHandle": f"r{i}", "body": body,
         "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": SENT},
         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench", "awsRegion": "us-east-1"}
        for i, body in enumerate(bodies)
    ]}


def bodies(count: int, invalid_share: float, seed: int) -> list[str]:
    """`count` bodies of which exactly round(count * invalid_share) are malformed."""
    valid = [m.body for m in generate(count * 2, seed=seed, malformed_share=0.0)][:count]
    invalid = [m.body for m in generate(count * 2, seed=seed + 1, malformed_share=1.0)]
    bad = round(count * invalid_share)
    step = count // bad if bad else 0
    for n in range(bad):
        valid[n * step] = invalid[n]
    return valid


def prebuilt_rows(batch: list[str], prefix: str) -> list[LoginRow]:
    """The rows the handler would store, built outside any timing."""
    import datetime

    masker = Masker(MASKING_KEY.encode())
    rows = []
    for i, body in enumerate(batch):
        login = parse_login(body)
        rows.append(LoginRow(
            f"{prefix}-{i}", login.user_id, login.device_type,
            login.ip and masker.mask_ip(login.ip),
            login.device_id and masker.mask_device_id(login.device_id),
            login.locale, login.app_version, login.create_date or datetime.date(2024, 12, 3)))
    return rows


class Bench:
    def __init__(self, database_url: str, rounds: int) -> None:
        self.url = database_url
        self.rounds = rounds
        self.connection = psycopg2.connect(database_url)
        self.cursor = self.connection.cursor()
        self.times: dict[str, list[float]] = {}
        self.records: dict[str, int] = {}

    def truncate(self) -> None:
        self.cursor.execute("TRUNCATE user_logins")
        self.connection.commit()

    def truncate_then(self, warm_up: Callable[..., object], *args: object) -> None:
        self.truncate()
        warm_up(*args)

    def measure(self, name: str, records: int, work: Callable[[], object],
                setup: Callable[[], object] | None = None) -> None:
        (setup or self.truncate)()
        gc.collect()
        started = time.perf_counter()
        work()
        self.times.setdefault(name, []).append(time.perf_counter() - started)
        self.records[name] = records

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def rate(self, name: str) -> float:
        return self.records[name] / self.median(name)


def run(database_url: str, rounds: int) -> dict[str, Any]:
    os.environ.update(DATABASE_URL=database_url, MASKING_KEY=MASKING_KEY)
    import handler
    from login_ingest.telemetry import logger

    # Log lines are formatted and written, as in Lambda, but to nowhere: a terminal's
    # speed is not the function's.
    logger.registered_handler.setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]  # noqa: SIM115

    bench = Bench(database_url, rounds)
    sizes = [10, 100, 1000, 10_000]
    batches = {(size, share): bodies(size, share, seed=size)
               for size in sizes for share in (0.0, 0.05)}
    rows_10k = prebuilt_rows(batches[(10_000, 0.0)], "pre")
    # Warm small invocations: 100 in a row each way, with distinct rows. Each way's
    # connection first makes one untimed write after the TRUNCATE, which invalidates what
    # its server process had cached about the table: warm means warm for that too.
    small_batches = [batches[(10_000, 0.0)][i * 10:(i + 1) * 10] for i in range(SMALL_CALLS)]
    small_rows = [rows_10k[i * 10:(i + 1) * 10] for i in range(SMALL_CALLS)]
    warm_rows = prebuilt_rows(batches[(10, 0.0)], "warm-bare")
    bare = psycopg2.connect(database_url)
    bare.autocommit = True
    bare_cursor = bare.cursor()
    per_row = rows_10k[:1000]
    text_10k = copy_text(rows_10k)
    key = MASKING_KEY.encode()
    insert_one = f"INSERT INTO user_logins ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    insert_many = f"INSERT INTO user_logins ({COLUMNS}) VALUES %s"
    context: Any = LocalLambdaContext()
    # The same processor with the PII vault switched on (off by default), for its price.
    vault_settings = Settings.from_env({**os.environ, "VAULT_LOCAL_KEY": new_local_key()})
    with_vault = LoginBatchProcessor(LoginStore(vault_settings.database_dsn),
                                     vault_settings.masker, vault_settings.vault)
    # One warm-up invocation: Lambda's first call pays for the connection, not the rows.
    handler.lambda_handler(sqs_event(batches[(10, 0.0)], "warm"), context)

    def per_row_inserts() -> None:
        for row in per_row:
            bench.cursor.execute(insert_one, row)
            bench.connection.commit()

    def executemany() -> None:
        bench.cursor.executemany(insert_one, rows_10k)
        bench.connection.commit()

    def multi_row_insert(rows: list[LoginRow]) -> None:
        execute_values(bench.cursor, insert_many, rows, page_size=len(rows))
        bench.connection.commit()

    def copy(rows_text: str) -> None:
        bench.cursor.copy_expert(f"COPY user_logins ({COLUMNS}) FROM STDIN", io.StringIO(rows_text))
        bench.connection.commit()

    def floor() -> None:
        for body in batches[(10_000, 0.0)]:
            login = json.loads(body)
            hmac.new(key, login["ip"].encode(), hashlib.sha256).digest()
            hmac.new(key, login["device_id"].encode(), hashlib.sha256).digest()
        copy(text_10k)

    masker = Masker(key)
    ips = [json.loads(b)["ip"] for b in batches[(10_000, 0.0)]]
    devices = [json.loads(b)["device_id"] for b in batches[(10_000, 0.0)]]

    for round_ in range(rounds):
        bench.measure("per-row INSERT + commit", len(per_row), per_row_inserts)
        bench.measure("executemany", len(rows_10k), executemany)
        bench.measure("multi-row INSERT (execute_values)", len(rows_10k),
                      lambda: multi_row_insert(rows_10k))
        bench.measure("raw COPY of pre-built rows", len(rows_10k), lambda: copy(text_10k))
        bench.measure("floor: json.loads + 2 HMAC + COPY", len(rows_10k), floor)
        bench.measure(BARE_SMALL, 10 * SMALL_CALLS,
                      lambda: [execute_values(bare_cursor, insert_many, rows)
                               for rows in small_rows],
                      setup=lambda: bench.truncate_then(
                          execute_values, bare_cursor, insert_many, warm_rows))
        events = [sqs_event(batch, f"w{round_}-{i}") for i, batch in enumerate(small_batches)]
        warm_event = sqs_event(batches[(10, 0.0)], f"w{round_}-warm")
        bench.measure(HANDLER_SMALL, 10 * SMALL_CALLS,
                      lambda events=events: [handler.lambda_handler(e, context) for e in events],  # type: ignore[misc]
                      setup=lambda event=warm_event: bench.truncate_then(  # type: ignore[misc]
                          handler.lambda_handler, event, context))
        for (size, share), batch in batches.items():
            event = sqs_event(batch, f"r{round_}-{size}-{share}")
            bench.measure(f"handler {size} {'5% invalid' if share else 'valid'}", size,
                          lambda event=event: handler.lambda_handler(event, context))  # type: ignore[misc]
        for size in (100, 10_000):
            event = sqs_event(batches[(size, 0.0)], f"v{round_}-{size}")
            bench.measure(f"processor {size} valid, vault on", size,
                          lambda event=event: with_vault.handle(event, context))  # type: ignore[misc]
        bench.measure("mask ip", len(ips), lambda: [masker.mask_ip(ip) for ip in ips],
                      setup=lambda: None)
        bench.measure("mask device_id", len(devices),
                      lambda: [masker.mask_device_id(d) for d in devices], setup=lambda: None)
        bench.measure("parse + validate", len(ips),
                      lambda: [parse_login(b) for b in batches[(10_000, 0.0)]],
                      setup=lambda: None)
    bench.truncate()
    return {"bench": bench, "import": import_seconds(database_url),
            "rss": peak_rss_mb(database_url)}


def import_seconds(database_url: str, runs: int = 5) -> float:
    """`import handler` in a fresh interpreter, as a Lambda cold start pays it."""
    code = "import time; t = time.perf_counter(); import handler; print(time.perf_counter() - t)"
    env = {**os.environ, "DATABASE_URL": database_url, "MASKING_KEY": MASKING_KEY}
    times = [float(subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                                  capture_output=True, text=True).stdout) for _ in range(runs)]
    return statistics.median(times)


def peak_rss_mb(database_url: str) -> float:
    """Peak resident memory of a fresh interpreter that handles one 10,000-record batch.

    The interpreter imports the handler and a context object, nothing else of ours: the
    event arrives as JSON, as Lambda's runtime hands it over. The figure is the kernel's
    VmHWM of the process's own memory; getrusage's ru_maxrss would carry over the parent's
    peak through fork and exec, that is this benchmark's.
    """
    event = sqs_event(bodies(10_000, 0.05, seed=99), "rss")
    code = (
        "import json, re, sys, handler\n"
        "from login_ingest.local.context import LocalLambdaContext\n"
        "event = json.load(sys.stdin)\n"
        "handler.lambda_handler(event, LocalLambdaContext())\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) / 1024)\n"
    )
    env = {**os.environ, "DATABASE_URL": database_url, "MASKING_KEY": MASKING_KEY,
           "POWERTOOLS_LOG_LEVEL": "ERROR"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                            input=json.dumps(event), capture_output=True, text=True)
    return float(result.stdout.strip().splitlines()[-1])


def report(outcome: dict[str, Any]) -> dict[str, Any]:
    bench: Bench = outcome["bench"]
    rows = [{"case": name, "records": bench.records[name],
             "median_ms": round(bench.median(name) * 1000, 3),
             "records_per_s": round(bench.rate(name))} for name in bench.times]
    floor = bench.median("floor: json.loads + 2 HMAC + COPY")
    handler_10k = bench.median("handler 10000 valid")
    per_row = bench.rate("per-row INSERT + commit")
    checks = [
        ("handler 10k valid / floor (target <= 2, aim 1.5)", handler_10k / floor, 2.0, "<="),
        ("handler 10k valid / per-row INSERT rate (target >= 10)",
         bench.rate("handler 10000 valid") / per_row, 10.0, ">="),
        ("handler 10k 5% invalid / valid-only rate (target >= 0.8)",
         bench.rate("handler 10000 5% invalid") / bench.rate("handler 10000 valid"), 0.8, ">="),
        ("warm 10-record handler / one bare 10-row INSERT (target <= 2)",
         bench.median(HANDLER_SMALL) / bench.median(BARE_SMALL),
         2.0, "<="),
        ("import handler, ms (target <= 300)", outcome["import"] * 1000, 300.0, "<="),
        ("peak RSS for 10k records, MB (target <= 128)", outcome["rss"], 128.0, "<="),
    ]
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}, PostgreSQL "
                   f"{bench.connection.server_version // 10000}",
        "rounds": bench.rounds,
        "cases": rows,
        "per_field_mask_us": round(bench.median("mask ip") / bench.records["mask ip"] * 1e6, 2),
        "parse_validate_us": round(
            bench.median("parse + validate") / bench.records["parse + validate"] * 1e6, 2),
        "targets": [{"check": name, "value": round(value, 3), "limit": limit,
                     "met": value <= limit if op == "<=" else value >= limit}
                    for name, value, limit, op in checks],
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = {row["case"]: row["records_per_s"] for row in results["cases"]}
    sizes = [10, 100, 1000, 10_000]
    figure, axes = plt.subplots(figsize=(8, 5))
    for label in ("valid", "5% invalid"):
        axes.plot(sizes, [rates[f"handler {s} {label}"] for s in sizes], marker="o",
                  label=f"handler, {label}")
    styles = {"floor: json.loads + 2 HMAC + COPY": "k--", "raw COPY of pre-built rows": "g:",
              "multi-row INSERT (execute_values)": "b-.", "executemany": "c:",
              "per-row INSERT + commit": "r--"}
    for case, style in styles.items():
        axes.axhline(rates[case], linestyle=style[1:], color=style[0], label=case)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("records per invocation")
    axes.set_ylabel("records per second")
    axes.set_title(f"login-ingest handler vs. baselines ({results['machine']})", fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def table(results: dict[str, Any]) -> str:
    lines = [f"{'case':<40} {'records':>8} {'median ms':>10} {'records/s':>10}"]
    lines += [f"{r['case']:<40} {r['records']:>8} {r['median_ms']:>10.2f} "
              f"{r['records_per_s']:>10}" for r in results["cases"]]
    lines.append("")
    lines.append(f"masking one field: {results['per_field_mask_us']} µs; parse + validate "
                 f"one record: {results['parse_validate_us']} µs")
    lines += [f"{'met ' if t['met'] else 'MISSED'} {t['check']}: {t['value']}"
              for t in results["targets"]]
    return "\n".join(lines)


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A database of the benchmark's own, on DATABASE_URL's server or a local one."""
    given = os.environ.get("DATABASE_URL")
    server = None if given else LocalPostgres().start()
    admin_url = given or (server.url if server else "")
    try:
        admin = psycopg2.connect(admin_url)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
            cursor.execute(f"CREATE DATABASE {BENCH_DB}")
        url = psycopg2.extensions.make_dsn(admin_url, dbname=BENCH_DB)
        apply_schema(url)
        yield url
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin.close()
    finally:
        if server is not None:
            server.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m login_ingest.local.bench",
                                     description="Benchmark the handler against baselines.")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path(".local/bench/results.json"))
    parser.add_argument("--plot", type=Path, default=Path(".local/bench/benchmark.png"),
                        help="README shows docs/benchmark.png: pass that to update it")
    args = parser.parse_args(argv)
    # The handler's metrics (EMF on stdout) are formatted and written too, to nowhere.
    with (bench_database() as url, open(os.devnull, "w") as nowhere,
          contextlib.redirect_stdout(nowhere)):
        results = report(run(url, args.rounds))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.plot)
    print(f"{results['machine']}; medians of {args.rounds} rounds")
    print(table(results))
    print(f"results: {args.json}; plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

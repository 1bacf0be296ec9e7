"""Benchmark ``trustwatch ingest`` of Zeek and Suricata TLS logs vs a bare read of the same files.

The corpus is built in ``WORKDIR/corpus-<events>`` from the real WRCCDC capture of
``../shared/data/network/zeek_sample`` (49,474 ``ssl.log`` sessions, 348 ``x509.log``
certificates), repeated until it holds ``--events`` sessions: copy *k* has every ``ts`` moved
by *k* times the capture's span (plus a minute) and ``k`` appended to every ``uid``, so no row
repeats another (the workspace would store a repeat once); ``x509.log`` is repeated with each
copy, as Zeek logs a certificate again in a new log. Three formats of the same sessions:

- ``zeek-tsv``: ``ssl.log.gz`` + ``x509.log.gz``, Zeek's ASCII logs (the sample's own lines);
- ``zeek-json``: ``ssl.json.gz`` + ``x509.json.gz`` (the sample's JSON lines, times moved);
- ``suricata-eve``: ``eve.json.gz``, one EVE ``tls`` event per session, made from the session
  and its leaf certificate's ``x509.log`` row (the sample has no SHA-1: the ``fingerprint``
  field holds the first 20 bytes of the SHA-256; sessions without a certificate, e.g.
  resumed ones, have the SNI and version only, as Suricata logs them).

Events are the records of the files: sessions plus certificate rows for Zeek, ``tls`` events for
EVE. For each format, the page cache is warmed (the files read once), then two child processes
run in turn, each timed by wall clock around it (interpreter start-up included on both sides):

1. bare read: gunzip and split every line (TSV: ``csv`` with tabs, header lines skipped; JSON:
   ``json.loads`` per line), counting records; the count must equal the corpus's;
2. ``trustwatch ingest FILES --workspace WORKDIR/ws-<format>.duckdb`` (must exit 0); the rows
   then stored are counted and must equal the events (nothing quarantined, nothing repeated).

Printed per format: events, both wall times and events/s, the ratio ingest / bare read, and the
load average before each run; with the machine (cores, CPU, Python, duckdb) and the commit. The
corpus and workspaces are deleted unless ``--keep``. A figure from a machine whose load average
is near its core count is not a measurement of trustwatch: say the load with every figure.

Usage::

    .venv/bin/python bench/network_ingest.py [--events 500000] [--workdir DIR] [--keep]
                                             [--formats zeek-tsv,zeek-json,suricata-eve]
    .venv/bin/python bench/network_ingest.py --quick     # 20k sessions
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "network" / "zeek_sample"
FORMATS = ("zeek-tsv", "zeek-json", "suricata-eve")
TABLES = ("Corelight_v2_ssl_CL", "Corelight_v2_x509_CL", "Suricata_tls_CL")

# The bare read: argv[1:] are files; prints the number of records. Gzip, then per line: TSV
# split by tabs (csv, Zeek quotes nothing), JSON parsed; '#' header lines are not records.
BARE = """
import csv, gzip, json, sys
n = 0
for name in sys.argv[1:]:
    with gzip.open(name, "rt", encoding="utf-8", newline="") as fh:
        if name.endswith(".log.gz"):
            for row in csv.reader(fh, delimiter="\\t", quoting=csv.QUOTE_NONE):
                if row and not row[0].startswith("#"):
                    n += 1
        else:
            for line in fh:
                if line.strip():
                    json.loads(line)
                    n += 1
print(n)
"""


@dataclass(slots=True)
class Corpus:
    files: dict[str, list[Path]]  # format -> files
    events: dict[str, int]  # format -> records in its files


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def _tsv(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    """Header lines (before the rows), field names and rows of a Zeek ASCII log."""
    head, rows, fields = [], [], []
    for line in _lines(path):
        if line.startswith("#"):
            if not rows and not line.startswith("#close"):
                head.append(line)
            if line.startswith("#fields\t"):
                fields = line.split("\t")[1:]
            continue
        rows.append(line.split("\t"))
    return head, fields, rows


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _shift_iso(text: str, by: timedelta) -> str:
    when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) + by
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_corpus(out: Path, sessions: int) -> Corpus:
    """The three formats of ``sessions`` sessions in ``out`` (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    ssl_head, ssl_fields, ssl_rows = _tsv(SAMPLE / "zeek-default" / "ssl.log.gz")
    x509_head, x509_fields, x509_rows = _tsv(SAMPLE / "zeek-default" / "x509.log.gz")
    ssl_json = _lines(SAMPLE / "zeek-json" / "ssl.json.gz")
    x509_json = _lines(SAMPLE / "zeek-json" / "x509.json.gz")
    times = [float(r[0]) for r in ssl_rows]
    span = max(times) - min(times) + 60.0
    copies = -(-sessions // len(ssl_rows))
    col = {name: i for i, name in enumerate(ssl_fields)}
    xcol = {name: i for i, name in enumerate(x509_fields)}
    certs = {r[xcol["fingerprint"]]: r for r in x509_rows}
    paths = {
        "zeek-tsv": [out / "ssl.log.gz", out / "x509.log.gz"],
        "zeek-json": [out / "ssl.json.gz", out / "x509.json.gz"],
        "suricata-eve": [out / "eve.json.gz"],
    }
    events = dict.fromkeys(FORMATS, 0)
    with (
        gzip.open(paths["zeek-tsv"][0], "wt", encoding="utf-8", compresslevel=1) as ssl_tsv,
        gzip.open(paths["zeek-tsv"][1], "wt", encoding="utf-8", compresslevel=1) as x509_tsv,
        gzip.open(paths["zeek-json"][0], "wt", encoding="utf-8", compresslevel=1) as ssl_js,
        gzip.open(paths["zeek-json"][1], "wt", encoding="utf-8", compresslevel=1) as x509_js,
        gzip.open(paths["suricata-eve"][0], "wt", encoding="utf-8", compresslevel=1) as eve,
    ):
        ssl_tsv.write("\n".join(ssl_head) + "\n")
        x509_tsv.write("\n".join(x509_head) + "\n")
        left = sessions
        for k in range(copies):
            by = k * span
            shift = timedelta(seconds=by)
            for row in x509_rows:
                x509_tsv.write("\t".join([f"{float(row[0]) + by:.6f}", *row[1:]]) + "\n")
            for line in x509_json:
                doc = json.loads(line)
                doc["ts"] = _shift_iso(doc["ts"], shift)
                doc["_write_ts"] = _shift_iso(doc["_write_ts"], shift)
                x509_js.write(json.dumps(doc, separators=(",", ":")) + "\n")
            events["zeek-tsv"] += len(x509_rows)
            events["zeek-json"] += len(x509_json)
            take = min(left, len(ssl_rows))
            for row, line in zip(ssl_rows[:take], ssl_json[:take], strict=True):
                moved = [f"{float(row[0]) + by:.6f}", f"{row[1]}{k}", *row[2:]]
                ssl_tsv.write("\t".join(moved) + "\n")
                doc = json.loads(line)
                doc["ts"] = _shift_iso(doc["ts"], shift)
                doc["_write_ts"] = _shift_iso(doc["_write_ts"], shift)
                doc["uid"] = f"{doc['uid']}{k}"
                ssl_js.write(json.dumps(doc, separators=(",", ":")) + "\n")
                eve.write(json.dumps(_eve(moved, col, certs, xcol, k)) + "\n")
            events["zeek-tsv"] += take
            events["zeek-json"] += take
            events["suricata-eve"] += take
            left -= take
        close = f"#close\t{datetime.now(UTC):%Y-%m-%d-%H-%M-%S}\n"
        ssl_tsv.write(close)
        x509_tsv.write(close)
    return Corpus(paths, events)


def _eve(
    row: list[str], col: dict[str, int], certs: dict[str, list[str]], xcol: dict[str, int], k: int
) -> dict[str, Any]:
    """The EVE tls event of one (moved) ssl.log row and its leaf's x509.log row."""

    def value(name: str) -> str:
        text = row[col[name]]
        return "" if text in ("-", "(empty)") else text

    ts = float(row[0])
    tls: dict[str, Any] = {}
    chain = value("cert_chain_fps")
    leaf = certs.get(chain.split(",")[0]) if chain else None
    if leaf is not None:
        tls["subject"] = leaf[xcol["certificate.subject"]].replace("\\\\", "\\")
        tls["issuerdn"] = leaf[xcol["certificate.issuer"]].replace("\\\\", "\\")
        serial = leaf[xcol["certificate.serial"]]
        tls["serial"] = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2))
        sha = leaf[xcol["fingerprint"]][:40]
        tls["fingerprint"] = ":".join(sha[i : i + 2] for i in range(0, 40, 2))
        for name, field in (("notbefore", "not_valid_before"), ("notafter", "not_valid_after")):
            when = float(leaf[xcol[f"certificate.{field}"]])
            tls[name] = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if value("server_name"):
        tls["sni"] = value("server_name")
    tls["version"] = value("version").replace("TLSv1", "TLS 1.")  # TLSv12 -> TLS 1.2
    return {
        "timestamp": _iso(ts).replace("Z", "+0000"),
        "flow_id": int(ts * 1_000_000) * 16 + k % 16,
        "event_type": "tls",
        "src_ip": value("id.orig_h"),
        "src_port": int(value("id.orig_p") or 0),
        "dest_ip": value("id.resp_h"),
        "dest_port": int(value("id.resp_p") or 0),
        "proto": "TCP",
        "tls": tls,
    }


def _warm(files: list[Path]) -> None:
    for path in files:
        with path.open("rb") as fh:
            while fh.read(1 << 20):
                pass


def _timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    return time.perf_counter() - start, done


def _stored(workspace: Path) -> int:
    import duckdb

    con = duckdb.connect(str(workspace), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        names = {r[0] for r in tables}
        total = 0
        for table in TABLES:
            if table in names:
                row = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608
                total += int(row[0]) if row else 0
        return total
    finally:
        con.close()


@dataclass(slots=True)
class Result:
    fmt: str
    events: int
    bare: float
    ingest: float
    stored: int
    loads: tuple[float, float]


def measure(fmt: str, corpus: Corpus, workdir: Path) -> Result:
    files = corpus.files[fmt]
    _warm(files)
    load_bare = os.getloadavg()[0]
    bare_s, bare = _timed([sys.executable, "-c", BARE, *map(str, files)])
    if bare.returncode != 0 or int(bare.stdout.strip() or -1) != corpus.events[fmt]:
        sys.exit(f"{fmt}: bare read failed or miscounted: {bare.stdout!r} {bare.stderr[-500:]}")
    workspace = workdir / f"ws-{fmt}.duckdb"
    workspace.unlink(missing_ok=True)
    trustwatch = str(Path(sys.executable).parent / "trustwatch")
    load_ingest = os.getloadavg()[0]
    argv = [trustwatch, "ingest", *map(str, files), "--workspace", str(workspace)]
    ingest_s, ingest = _timed(argv)
    if ingest.returncode != 0:
        sys.exit(f"{fmt}: trustwatch ingest exited {ingest.returncode}: {ingest.stderr[-2000:]}")
    stored = _stored(workspace)
    return Result(fmt, corpus.events[fmt], bare_s, ingest_s, stored, (load_bare, load_ingest))


def _machine() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        cpuinfo = []
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    try:
        import duckdb

        duck = duckdb.__version__
    except ImportError:
        duck = "?"
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} cores, {cpu}; python {platform.python_version()}, duckdb {duck}; "
        f"commit {commit or '?'}"
    )


def report(results: list[Result]) -> Iterator[str]:
    yield (
        f"{'format':<13} {'events':>9} {'bare s':>8} {'bare ev/s':>11} {'ingest s':>9} "
        f"{'ingest ev/s':>12} {'ratio':>6} {'stored':>9}  load (bare, ingest)"
    )
    for r in results:
        yield (
            f"{r.fmt:<13} {r.events:>9,} {r.bare:>8.2f} {r.events / r.bare:>11,.0f} "
            f"{r.ingest:>9.2f} {r.events / r.ingest:>12,.0f} {r.ingest / r.bare:>6.1f} "
            f"{r.stored:>9,}  {r.loads[0]:.2f}, {r.loads[1]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=500_000, help="sessions in the corpus")
    parser.add_argument("--quick", action="store_true", help="20k sessions")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep corpus and workspaces")
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    if not SAMPLE.is_dir():
        sys.exit(f"needs the shared reference data at {SAMPLE}")
    sessions = 20_000 if args.quick else args.events
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        sys.exit(f"unknown format(s) {', '.join(sorted(unknown))}; one of {', '.join(FORMATS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="trustwatch-netbench-"))
    print(_machine())
    print(f"load average {os.getloadavg()[0]:.2f} before building the corpus", flush=True)
    corpus_dir = workdir / f"corpus-{sessions}"
    start = time.perf_counter()
    corpus = build_corpus(corpus_dir, sessions)
    size = sum(p.stat().st_size for files in corpus.files.values() for p in files)
    print(
        f"corpus: {sessions:,} sessions, {size / 2**20:.1f} MiB gzip in {corpus_dir} "
        f"({time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    results = []
    try:
        for fmt in formats:
            result = measure(fmt, corpus, workdir)
            if result.stored != result.events:
                print(f"warning: {fmt}: {result.stored:,} rows stored of {result.events:,}")
            results.append(result)
            print(f"  {fmt} done", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for line in report(results):
        print(line)
    print("ratio = ingest wall time / bare read wall time; both in child processes, start-up incl.")


if __name__ == "__main__":
    main()

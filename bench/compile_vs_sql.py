"""Benchmark the specification's detection query: trustwatch's SQL vs hand-written DuckDB SQL.

The KQL is read from ``../shared/spec/T1588.004-detection-spec.txt`` (from the line starting
``// Detection:`` through ``| sort by Timestamp desc``). Both sides run on the same connection
over the same ``DeviceRegistryEvents`` table of ``--rows`` generated rows, loaded once into one
:class:`trustwatch.api.Session`:

* trustwatch, compile + execute: ``Session.compile`` then the statement's SQL on the engine;
* trustwatch, execute only: the compiled SQL text, run again;
* hand-written: the same semantics written directly in DuckDB SQL.

Runs alternate (the order rotates every repetition) after one warm-up each; the medians and the
ratio trustwatch / hand-written are printed, and the two results are checked to hold the same
rows.

Usage::

    .venv/bin/python bench/compile_vs_sql.py [--rows N] [--repeat R] [--spec FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from trustwatch.api import Session

DEFAULT_SPEC = (
    Path(__file__).resolve().parents[2] / "shared" / "spec" / "T1588.004-detection-spec.txt"
)
TABLE = "DeviceRegistryEvents"
SPAN_START = datetime(2024, 5, 1, tzinfo=UTC)
SPAN = timedelta(days=3)
TARGET_RATIO = 1.2

HKCU_SID = r"HKEY_CURRENT_USER\S-1-5-21-3623811015-3361044348-30300820-1013"
# Where certificate stores live; the WOW6432Node copy is not matched by the detection's terms.
STORE_ROOTS = (
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\SystemCertificates",
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\SystemCertificates",
    HKCU_SID + r"\SOFTWARE\Microsoft\SystemCertificates",
    r"HKEY_LOCAL_MACHINE\SOFTWARE\WOW6432Node\Microsoft\SystemCertificates",
    r"hkey_local_machine\software\microsoft\systemcertificates",
)
STORES = ("Root", "Root", "CA", "CA", "AuthRoot", "CAExtra", "Disallowed", "TrustedPublisher")
ORDINARY_KEYS = (
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run",
    r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\bam\State\UserSettings",
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows Defender\Features",
    r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\W32Time\Parameters",
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Cryptography\RNG",
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Schedule\TaskCache\Tree",
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU",
    HKCU_SID + r"\Software\Microsoft\Windows\CurrentVersion\Explorer\RecentDocs",
    HKCU_SID + r"\Software\Microsoft\Office\16.0\Common\Roaming",
    HKCU_SID + r"\Software\Classes\CLSID",
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\EnterpriseCertificates\Root\Certificates",  # near miss
    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\SystemCertificates\CA\CRLs",  # near miss
)
ACTIONS = (
    ("RegistryValueSet",) * 4
    + ("RegistryKeyCreated",) * 2
    + ("RegistryValueDeleted",) * 2
    + ("RegistryKeyDeleted", "RegistryKeyRenamed")
)
PROCESSES = ("svchost.exe",) * 5 + (
    "SVCHOST.EXE",
    "certutil.exe",
    "powershell.exe",
    "powershell.exe",
    "msiexec.exe",
    "msiexec.exe",
    "",
    "lsass.exe",
    "MsMpEng.exe",
    "TrustedInstaller.exe",
    "MicrosoftEdgeUpdate.exe",
    "explorer.exe",
    "chrome.exe",
    "cmd.exe",
    "SgrmBroker.exe",
)
PARENTS = (
    "services.exe",
    "services.exe",
    "explorer.exe",
    "cmd.exe",
    "powershell.exe",
    "wininit.exe",
    "svchost.exe",
    "",
)
ACCOUNTS = (
    "SYSTEM",
    "SYSTEM",
    "LOCAL SERVICE",
    "NETWORK SERVICE",
    "jdoe",
    "asmith",
    "svc_sccm",
    "",
)

# Rows are generated in SQL from two 64-bit hashes (a, b) of the row number, so the data is the
# same on every run and generation runs in parallel. Each pick reads its own bit field of a hash,
# which keeps the picks independent; a weighted pick repeats entries in its list.
_GENERATE = r"""
WITH ids AS (
    SELECT i, hash(i) AS a, hash(i + 7046029254386353131) AS b
    FROM range($rows) AS r(i)
), picked AS (
    SELECT i, a, b,
           (a % 200 = 0) AS in_store,  -- 0.5 % of rows land in a certificate store
           upper(substr(sha256(CAST(i AS VARCHAR)), 1, 40)) AS thumb,
           $store_root AS store_root, $store AS store, $ordinary AS ordinary,
           $action AS action, $process AS process, $parent AS parent, $account AS account
    FROM ids
)
SELECT
    CAST($start AS TIMESTAMP) + to_microseconds(CAST(b % $span_us AS BIGINT)) AS "Timestamp",
    'ws-' || lpad(CAST((b >> 40) % 5000 AS VARCHAR), 4, '0') || '.contoso.local' AS "DeviceName",
    account AS "AccountName",
    action AS "ActionType",
    CASE WHEN in_store THEN store_root || '\' || store || '\Certificates\' || thumb
         ELSE ordinary || '\' || CAST((b >> 16) % 100000 AS VARCHAR) END AS "RegistryKey",
    process AS "InitiatingProcessFileName",
    CASE process
        WHEN 'certutil.exe'
            THEN 'certutil.exe -addstore Root C:\Users\jdoe\AppData\Local\Temp\ca-'
                 || CAST((b >> 8) % 97 AS VARCHAR) || '.cer'
        WHEN 'powershell.exe'
            THEN 'powershell.exe -NoProfile -Command "Import-Certificate -FilePath '
                 || 'C:\ProgramData\c.cer -CertStoreLocation Cert:\LocalMachine\Root"'
        WHEN 'msiexec.exe' THEN 'msiexec.exe /i C:\Windows\ccmcache\1a\agent.msi /qn'
        WHEN '' THEN ''
        ELSE 'C:\Windows\System32\' || process || ' -k netsvcs -p'
    END AS "InitiatingProcessCommandLine",
    parent AS "InitiatingProcessParentFileName"
FROM picked
"""


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _pick(values: tuple[str, ...], shift: int) -> str:
    """SQL choosing one of ``values`` from bits ``shift``.. of hash ``a``."""
    items = ", ".join(_sql_string(v) for v in values)
    return f"[{items}][1 + CAST((a >> {shift}) % {len(values)} AS INTEGER)]"


# The detection written by hand for DuckDB, with the KQL semantics spelled out:
# * has_any: each term must start and end on a term boundary (a non-letter/digit or the string's
#   edge), case-insensitively; one regular expression with the four terms as alternatives.
# * Case-insensitivity is ASCII in KQL; lower() equals ASCII folding for these terms and names
#   (none contains 'k', the one ASCII letter a non-ASCII capital lowers to).
# * !in~ keeps empty names (KQL strings are never null, and '' is in no list).
# * case(): "Root\" and "CA\" end in a non-word character, so only their start needs a boundary.
# * split(RegistryKey, "\")[-1]: the last element of string_split.
_HAND_WRITTEN = r"""
SELECT
    "Timestamp", "DeviceName", "AccountName", "ActionType",
    CASE
        WHEN regexp_matches(lower("RegistryKey"), '(^|[^\p{L}\p{N}])root\\') THEN 'Trusted Root CA'
        WHEN regexp_matches(lower("RegistryKey"), '(^|[^\p{L}\p{N}])ca\\') THEN 'Intermediate CA'
        ELSE 'Other'
    END AS "CertStoreType",
    string_split("RegistryKey", '\')[-1] AS "CertThumbprint",
    "RegistryKey", "InitiatingProcessFileName", "InitiatingProcessCommandLine",
    "InitiatingProcessParentFileName"
FROM $table
WHERE "Timestamp" > TIMESTAMP '$now' - INTERVAL 24 HOUR
  AND regexp_matches(lower("RegistryKey"),
        '(^|[^\p{L}\p{N}])(software\\microsoft\\systemcertificates\\root\\certificates'
        || '|software\\microsoft\\systemcertificates\\ca\\certificates'
        || '|software\\policies\\microsoft\\systemcertificates\\root\\certificates'
        || '|software\\policies\\microsoft\\systemcertificates\\ca)($|[^\p{L}\p{N}])')
  AND "ActionType" IN ('RegistryValueSet', 'RegistryKeyCreated')
  AND lower("InitiatingProcessFileName") NOT IN (
        'svchost.exe', 'lsass.exe', 'wuauclt.exe', 'trustedinstaller.exe',
        'microsoftedgeupdate.exe', 'msmpeng.exe', 'sgrmbroker.exe')
ORDER BY "Timestamp" DESC
"""


def read_spec_query(spec: Path) -> str:
    """The KQL from '// Detection:' through '| sort by Timestamp desc' (trailing prose cut)."""
    lines = spec.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("// Detection:"))
    end = next(
        i for i in range(start, len(lines)) if lines[i].startswith("| sort by Timestamp desc")
    )
    last = lines[end]
    cut = last.index("desc") + len("desc")
    return "\n".join([*lines[start:end], last[:cut]])


def generate(rows: int, now: datetime) -> pa.Table:
    """``rows`` DeviceRegistryEvents rows (plus an AccountName column) as Arrow, built in DuckDB."""
    span_us = int(SPAN.total_seconds() * 1_000_000)
    start = (now - SPAN).strftime("%Y-%m-%d %H:%M:%S")
    con = duckdb.connect()
    try:
        sql = _GENERATE
        for name, value in {
            "$store_root": _pick(STORE_ROOTS, 8),
            "$store": _pick(STORES, 16),
            "$ordinary": _pick(ORDINARY_KEYS, 24),
            "$action": _pick(ACTIONS, 32),
            "$process": _pick(PROCESSES, 40),
            "$parent": _pick(PARENTS, 48),
            "$account": _pick(ACCOUNTS, 56),
            "$rows": str(int(rows)),
            "$span_us": str(span_us),
            "$start": _sql_string(start),
        }.items():
            sql = sql.replace(name, value)
        table = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    return table.combine_chunks()


def timed(action: Callable[[], pa.Table]) -> tuple[float, pa.Table]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def same_rows(a: pa.Table, b: pa.Table) -> tuple[bool, str]:
    """Same count, CertThumbprint multiset and row multiset; both sorted by Timestamp desc."""
    if a.num_rows != b.num_rows:
        return False, f"row counts differ: {a.num_rows} vs {b.num_rows}"
    thumbs_a = Counter(a.column("CertThumbprint").to_pylist())
    if thumbs_a != Counter(b.column("CertThumbprint").to_pylist()):
        return False, "CertThumbprint multisets differ"
    names = a.column_names
    if names != b.column_names:
        return False, f"columns differ: {names} vs {b.column_names}"
    rows_a = Counter(zip(*(a.column(n).to_pylist() for n in names), strict=True))
    rows_b = Counter(zip(*(b.column(n).to_pylist() for n in names), strict=True))
    if rows_a != rows_b:
        only = sum((rows_a - rows_b).values())
        return False, f"row multisets differ ({only} rows only in trustwatch)"
    for label, table in (("trustwatch", a), ("hand-written", b)):
        stamps = table.column("Timestamp").to_pylist()
        if any(x < y for x, y in zip(stamps, stamps[1:], strict=False)):
            return False, f"{label} result is not sorted by Timestamp desc"
    return True, f"{a.num_rows} rows, {len(thumbs_a)} distinct thumbprints"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--rows", type=int, default=5_000_000, help="generated rows (default 5,000,000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed repetitions per side (default 5)"
    )
    parser.add_argument(
        "--spec", type=Path, default=DEFAULT_SPEC, help="the detection specification text"
    )
    parser.add_argument("--show-sql", action="store_true", help="print both SQL texts")
    args = parser.parse_args(argv)

    kql = read_spec_query(args.spec)
    now = SPAN_START + SPAN
    print(
        f"rows: {args.rows:,}   repetitions: {args.repeat} (+1 warm-up)   now: {now.isoformat()}"
        f"   cpus: {os.cpu_count()}   duckdb {duckdb.__version__}"
    )
    print(
        "note: DeviceRegistryEvents has no AccountName column in the documented schema; the"
        "\n      generated data carries it as an extra column so the verbatim query resolves."
    )

    started = time.perf_counter()
    data = generate(args.rows, now)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    session = Session(tables={TABLE: data})
    loaded = time.perf_counter() - started
    del data
    sql_name = session.catalog[TABLE].sql_name
    con = session.engine.con
    print(
        f"generated in {generated:.1f}s, loaded into the session in {loaded:.1f}s"
        f" (table {sql_name})"
    )
    store_pattern = r"(?i)systemcertificates\\[^\\]+\\certificates\\"
    count_sql = f'SELECT count(*) FROM "{sql_name}" WHERE regexp_matches("RegistryKey", ?)'  # noqa: S608
    in_store = con.execute(count_sql, [store_pattern]).fetchall()[0][0]
    print(f"rows under a SystemCertificates store: {in_store:,}")

    statements, _ = session.compile(kql, now)
    if len(statements) != 1:
        print(f"error: expected one result statement, got {len(statements)}", file=sys.stderr)
        return 1
    compiled_sql = statements[0].to_sql(session.engine.dialect)
    hand_sql = _HAND_WRITTEN.replace("$table", f'"{sql_name}"').replace(
        "$now", now.strftime("%Y-%m-%d %H:%M:%S")
    )
    if args.show_sql:
        print("\n-- trustwatch --\n" + compiled_sql + "\n\n-- hand-written --\n" + hand_sql)

    def tw_compile_execute() -> pa.Table:
        stmts, _ = session.compile(kql, now)
        return con.sql(stmts[0].to_sql(session.engine.dialect)).to_arrow_table()

    def tw_execute() -> pa.Table:
        return con.sql(compiled_sql).to_arrow_table()

    def hand_written() -> pa.Table:
        return con.sql(hand_sql).to_arrow_table()

    sides: dict[str, Callable[[], pa.Table]] = {
        "trustwatch compile+execute": tw_compile_execute,
        "trustwatch execute only": tw_execute,
        "hand-written SQL": hand_written,
    }
    results: dict[str, pa.Table] = {name: run() for name, run in sides.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for rep in range(args.repeat):
        for name in order[rep % len(order) :] + order[: rep % len(order)]:
            seconds, results[name] = timed(sides[name])
            times[name].append(seconds)

    ok, detail = same_rows(results["trustwatch execute only"], results["hand-written SQL"])
    print(f"\nsame result: {'YES' if ok else 'NO'} ({detail})")
    compile_times: list[float] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        session.compile(kql, now)
        compile_times.append(time.perf_counter() - started)

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nmedian of {args.repeat} (seconds; all runs):")
    for name, values in times.items():
        print(f"  {name:28s} {medians[name]:8.3f}   [{', '.join(f'{v:.3f}' for v in values)}]")
    print(f"  {'compile alone':28s} {statistics.median(compile_times):8.3f}")
    hand = medians["hand-written SQL"]
    for name in ("trustwatch execute only", "trustwatch compile+execute"):
        ratio = medians[name] / hand if hand else float("nan")
        verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
        print(f"ratio {name} / hand-written: {ratio:.2f}   (target <= {TARGET_RATIO}: {verdict})")
    session.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

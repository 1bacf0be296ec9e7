"""The Spark engine: the CLI and API over Parquet folders, refusals, the SQL it is given.

The shared KQL cases run on Spark in tests/kql/test_conformance.py; these check what is
particular to the engine. All share one SparkSession (``spark_session``) on one worker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tests.conftest import spark_group
from trustwatch.cli.main import cli
from trustwatch.errors import UnsupportedKql

pytestmark = spark_group

QUERY = (
    "DeviceRegistryEvents | where RegistryKey has @'SystemCertificates\\Root'"
    " | summarize n = count() by DeviceName | sort by DeviceName asc"
)


def _events(day: str, devices: list[str], keys: list[str]) -> pa.Table:
    n = len(devices)
    return pa.table(
        {
            "Timestamp": pa.array([f"{day}T10:00:00"] * n).cast(pa.timestamp("us")),
            "TimeGenerated": pa.array([f"{day}T10:00:00"] * n).cast(pa.timestamp("us")),
            "DeviceName": devices,
            "RegistryKey": keys,
            "ActionType": ["RegistryKeyCreated"] * n,
        }
    )


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A Parquet export's layout: DIR/<Table>/day=YYYY-MM-DD/*.parquet."""
    root = tmp_path / "pq"
    root_key = "HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\Root\\Certificates\\AB"
    for day, devices, keys in [
        ("2024-01-01", ["a", "b"], [root_key, "HKLM\\SOFTWARE\\Other"]),
        ("2024-01-02", ["a", "c"], [root_key, root_key]),
    ]:
        folder = root / "DeviceRegistryEvents" / f"day={day}"
        folder.mkdir(parents=True)
        pq.write_table(_events(day, devices, keys), folder / "part-0.parquet")
    return root


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_query_on_spark_reads_a_parquet_export_as_duckdb_reads_its_files(
    spark_session: Any, export: Path
) -> None:
    code, out, err = _run(
        "query", QUERY, "--engine", "spark", "--data", str(export), "--format", "json"
    )
    assert code == 0, err
    spark_rows = json.loads(out)
    assert spark_rows == [{"DeviceName": "a", "n": 2}, {"DeviceName": "c", "n": 1}]
    files = sorted((export / "DeviceRegistryEvents").glob("day=*/*.parquet"))
    merged = export.parent / "all.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(f) for f in files]), merged)
    code, out, err = _run(
        "query", QUERY, "--table", f"DeviceRegistryEvents={merged}", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out) == spark_rows


def test_explain_prints_spark_sql(spark_session: Any) -> None:
    code, out, err = _run("query", "print s = strcat('a', 'b')", "--engine", "spark", "--explain")
    assert code == 0, err
    assert "CONCAT_WS(''," in out.upper().replace(" ", "") and "$" not in out


def test_a_function_without_a_spark_equivalent_is_refused_by_name(spark_session: Any) -> None:
    code, _, err = _run(
        "query",
        "datatable(x:long)[1, 2] | summarize percentile(x, 50)",
        "--engine",
        "spark",
    )
    assert code == 2
    assert "not supported on the spark engine" in err and "quantile_disc" in err


def test_data_that_names_no_table_is_an_input_error(spark_session: Any, tmp_path: Path) -> None:
    code, _, err = _run("query", "print 1", "--engine", "spark", "--data", str(tmp_path))
    assert code == 2 and "holds no table folder" in err


def test_python_api_returns_a_spark_dataframe(spark_session: Any) -> None:
    import trustwatch

    rows = [{"DeviceName": "x", "RegistryKey": "k"}, {"DeviceName": "y", "RegistryKey": "k"}]
    frame = trustwatch.query(
        "DeviceRegistryEvents | summarize n = count()",
        {"DeviceRegistryEvents": rows},
        engine="spark",
        spark=spark_session,
    )
    assert type(frame).__name__ == "DataFrame"
    assert frame.toArrow().to_pylist() == [{"n": 2}]


def test_unsupported_raises_before_running(spark_session: Any) -> None:
    from trustwatch.api import Session
    from trustwatch.engines.select import SparkOptions, open_engine

    session = Session(engine=open_engine("spark", SparkOptions(session=spark_session)))
    with pytest.raises(UnsupportedKql, match="not supported on the spark engine"):
        session.run("datatable(x:long)[1, 2] | summarize percentile(x, 50)")
    session.engine.close()


def test_rows_differing_from_duckdb_fail_the_conformance_suite(
    spark_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite's differential check catches a rewrite that changes a result, even in a case
    listed as an expected failure (EnginesDisagree is not one of the failures xfail accepts)."""
    from tests.kql.test_conformance import (
        EXPECTED_FAILURES,
        EnginesDisagree,
        check_same_as_duckdb,
        run_case,
    )
    from trustwatch.engines import spark_sql
    from trustwatch.engines.select import SparkOptions, open_engine

    assert not issubclass(EnginesDisagree, EXPECTED_FAILURES)
    case = {"kql": "print s = toupper('ab'), n = 1", "expect": {"rows": [["AB", 1]]}}
    spark = open_engine("spark", SparkOptions(session=spark_session))
    duckdb = open_engine("duckdb", None)
    try:
        check_same_as_duckdb(case, run_case(case, spark), duckdb)  # the same rows: no error
        monkeypatch.setitem(spark_sql.REWRITES, "upper", spark_sql._same("lower"))
        with pytest.raises(EnginesDisagree, match="spark"):
            check_same_as_duckdb(case, run_case(case, spark), duckdb)
    finally:
        spark.close()
        duckdb.close()


@pytest.mark.parametrize(
    "kql",
    [
        # once wrong on Spark: trim(s, chars) read as trim(chars, s); a list of JSON values
        # re-quoted; $ matching before a final newline; a { read as a repetition
        'print g = toguid("{0123456789abcdef0123456789abcdef}")',
        'print a = pack_array(1, "a", dynamic([1])), c = array_concat(pack_array(1), dynamic([3]))',
        'print v = parse_ipv4("1.2.3.4\\n"), g = toguid("0123456789abcdef0123456789abcdef\\n")',
        'print t = trim("{}", "{x}"), n = countof("a\\\\Eb\\\\Ec", "\\\\E")',
        'datatable(s:string)["a b"] | extend h = s has "b", r=replace_regex(s, "(b)", @"<\\1>")',
        'print d = dynamic({"a": {"x": 1}, "it\'s": [1, 2]}) | mv-expand bagexpansion=array d',
        'print m = datetime_diff("month", datetime(2024-02-01), datetime(2024-01-31))',
        'print h = datetime_diff("hour", datetime(1970-01-01 00:30), datetime(1969-12-31 23:30))',
    ],
)
def test_constructs_once_answered_differently_give_duckdbs_rows(
    spark_session: Any, kql: str
) -> None:
    from tests.kql.test_conformance import check_same_as_duckdb, run_case
    from trustwatch.engines.select import SparkOptions, open_engine

    case = {"kql": kql, "expect": {"rows": []}}
    spark = open_engine("spark", SparkOptions(session=spark_session))
    duckdb = open_engine("duckdb", None)
    try:
        check_same_as_duckdb(case, run_case(case, spark), duckdb)
    finally:
        spark.close()
        duckdb.close()


def test_hunt_on_spark_raises_the_alerts_of_duckdb(spark_session: Any) -> None:
    """hunt --engine spark: the same ingest, its tables written as Parquet for Spark, the
    rules' one-evaluation replay (its runs as zipped lists) run there: the same alerts."""
    import trustwatch

    content = Path(trustwatch.__file__).parent / "content"
    samples = content / "samples" / "hunt"
    args = [
        "hunt",
        str(samples / "spec-test-1-certutil-root.sysmon.xml"),
        str(samples / "spec-test-2-import-certificate.defender.json"),
        "--rules",
        str(content / "rules" / "default" / "trust_store_certificate_write.yaml"),
        "--rules",
        str(content / "rules" / "default" / "powershell_certificate_install.yaml"),
        "--format",
        "json",
    ]
    code, on_duckdb, err = _run(*args)
    assert code == 1, err
    code, on_spark, err = _run(*args, "--engine", "spark")
    assert code == 1, err
    assert json.loads(on_spark) == json.loads(on_duckdb)
    assert {a["AlertName"] for a in json.loads(on_spark)} == {
        "Certificate added to a Windows trust store",
        "PowerShell adds a certificate to a trust-granting certificate store",
    }

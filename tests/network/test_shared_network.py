"""Every file under ../shared/data/network: the Zeek logs ingest with read = stored +
quarantined + duplicates and the counts their text gives, counted here independently of the
readers (records are the non-comment lines; equal lines are the duplicates); the other files
(licences, READMEs, the labels CSV, a labeling config) are not telemetry and are skipped."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SHARED
from trustwatch.ingest import pipeline
from trustwatch.ingest.readers.zeek import ZEEK_TABLES
from trustwatch.ingest.workspace import FileStats, Workspace

NETWORK = SHARED / "data" / "network"
NOT_TELEMETRY = {
    "MANIFEST.md",
    "cert_labels.csv",
    "corelight_c2_detectors/zeek-asyncrat-detector/LICENSE",
    "corelight_c2_detectors/zeek-quasarrat-detector/LICENSE",
    "stratosphere_security_datasets/LICENSE",
    "stratosphere_security_datasets/009-zeek-malicious/README.md",
    "stratosphere_security_datasets/009-zeek-malicious/labels.config",
    "zat/LICENSE",
    "zeek_sample/LICENSE",
    "zeek_sample/README.md",
}
BASELINE = "corelight_c2_detectors/zeek-asyncrat-detector/testing/Baseline"
# (records, duplicates, table) per file; the records as MANIFEST.md lists them
EXPECTED = {
    f"{BASELINE}/tests.run-asyncrat-pcap/notice.log": (1, 0, "Corelight_v2_notice_CL"),
    f"{BASELINE}/tests.run-dcrat-pcap/notice.log": (1, 0, "Corelight_v2_notice_CL"),
    f"{BASELINE}/tests.run-sxn-pcap/notice.log": (1, 0, "Corelight_v2_notice_CL"),
    "corelight_c2_detectors/zeek-quasarrat-detector/testing/Baseline/tests.run-quasarrat-ssl/"
    "notice.log": (1, 0, "Corelight_v2_notice_CL"),
    "stratosphere_security_datasets/009-zeek-malicious/data/notice.log.labeled": (
        39,
        0,
        "Corelight_v2_notice_CL",
    ),
    # 744 rows, 11 of them exact copies of another row
    "stratosphere_security_datasets/009-zeek-malicious/data/ssl.log.labeled": (
        744,
        11,
        "Corelight_v2_ssl_CL",
    ),
    "zat/data/tor_ssl.log": (733, 0, "Corelight_v2_ssl_CL"),
    "zeek_sample/zeek-default/known_certs.log.gz": (35, 0, "Corelight_v2_known_certs_CL"),
    "zeek_sample/zeek-default/notice.log.gz": (207, 0, "Corelight_v2_notice_CL"),
    "zeek_sample/zeek-default/ocsp.log.gz": (1308, 0, "Corelight_v2_ocsp_CL"),
    "zeek_sample/zeek-default/ssl.log.gz": (49474, 0, "Corelight_v2_ssl_CL"),
    "zeek_sample/zeek-default/x509.log.gz": (348, 0, "Corelight_v2_x509_CL"),
    "zeek_sample/zeek-json/ssl.json.gz": (49474, 0, "Corelight_v2_ssl_CL"),
    "zeek_sample/zeek-json/x509.json.gz": (348, 0, "Corelight_v2_x509_CL"),
}

pytestmark = pytest.mark.skipif(
    not NETWORK.is_dir(), reason=f"needs the ../shared reference data at {NETWORK}"
)


def text_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", "replace").splitlines()


def independent_count(path: Path) -> tuple[int, int, str]:
    """(records, duplicates, table) from the file's text alone."""
    lines = [line for line in text_lines(path) if line.strip() and not line.startswith("#")]
    header = [line.split("\t", 1)[1] for line in text_lines(path) if line.startswith("#path\t")]
    if header:
        logs = set(header)
    else:
        logs = {json.loads(line)["_path"] for line in lines}
    [log] = logs
    repeats = sum(n - 1 for n in Counter(lines).values())
    return len(lines), repeats, ZEEK_TABLES[log]


@pytest.fixture(scope="module")
def ingested() -> tuple[list[FileStats], list[tuple[Path, str]]]:
    planned, skipped = pipeline.plan([NETWORK], skip_unknown=True)
    return Workspace(None).ingest(planned), skipped


def test_every_network_file_is_read_or_skipped_as_not_telemetry(ingested: tuple) -> None:
    stats, skipped = ingested
    every = {str(p.relative_to(NETWORK)) for p in NETWORK.rglob("*") if p.is_file()}
    read = {str(Path(s.path).relative_to(NETWORK)) for s in stats}
    assert {str(p.relative_to(NETWORK)) for p, _ in skipped} == NOT_TELEMETRY
    assert all("not a telemetry format" in why for _, why in skipped)
    assert read == every - NOT_TELEMETRY == set(EXPECTED)


def test_counts_per_file(ingested: tuple) -> None:
    stats, _ = ingested
    for s in stats:
        name = str(Path(s.path).relative_to(NETWORK))
        records, duplicates, table = EXPECTED[name]
        assert independent_count(Path(s.path)) == (records, duplicates, table), name
        assert s.read == s.stored + s.quarantined + s.duplicates, name
        assert (s.read, s.stored, s.quarantined, s.duplicates) == (
            records,
            records - duplicates,
            0,
            duplicates,
        ), name
        assert s.tables == {table: records - duplicates}, name
    assert sum(s.stored for s in stats) == 102_703

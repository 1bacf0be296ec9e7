"""Every export format, validated: Sentinel YAML by ``rules lint``, ARM and Defender JSON against
the reference shapes (alert_rule_schema.yaml), Sigma by pySigma's validators, Splunk and Elastic
by their backends converting without errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.export.schema_check import problems
from trustwatch.export.defender import DEVICE_ASSET
from trustwatch.export.formats import PACK_TEMPLATE, export_rules
from trustwatch.export.model import ExportResult
from trustwatch.export.names import safe_stem, unique_stems
from trustwatch.export.sentinel import RULE_TYPE, WATCHLIST_TYPE, iso_duration
from trustwatch.export.sigma import sigma_export, validate_sigma
from trustwatch.export.watchlists import EXCLUSIONS_ALIAS
from trustwatch.rules.lint import has_errors, lint_rules
from trustwatch.rules.model import Rule, load_rules
from trustwatch.rules.tuning import default_tuning_path, glob_regex, load_tuning

SCHEMA = yaml.safe_load((Path(__file__).parent / "alert_rule_schema.yaml").read_text("utf-8"))


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules(["all"])


def _export(rules: list[Rule], fmt: str) -> ExportResult:
    return export_rules(rules, fmt, load_tuning(default_tuning_path()))


def _write(result: ExportResult, folder: Path) -> None:
    for f in result.files:
        (folder / f.name).write_text(f.text, encoding="utf-8")


def test_sentinel_yaml_passes_lint_and_keeps_every_value(rules: list[Rule], tmp_path: Path) -> None:
    _write(_export(rules, "sentinel-yaml"), tmp_path)
    exported = load_rules([str(tmp_path)])
    findings = lint_rules(exported)
    assert not has_errors(findings), [f.render() for f in findings if f.severity == "error"]
    by_id = {r.id: r for r in exported}
    for rule in rules:
        assert dict(by_id[rule.id].doc) == dict(rule.doc)


def test_arm_templates_match_the_alert_rule_and_watchlist_schemas(rules: list[Rule]) -> None:
    result = _export(rules, "arm")
    assert len(result.files) == len(rules) + 1 and result.files[-1].name == PACK_TEMPLATE
    for file in result.files:
        template = json.loads(file.text)
        assert problems(template, SCHEMA["template"]) == []
        kinds = {"rule": SCHEMA["alertRule"], "watchlist": SCHEMA["watchlist"]}
        for resource in template["resources"]:
            kind = "rule" if resource["type"] == RULE_TYPE else "watchlist"
            assert resource["type"] in (RULE_TYPE, WATCHLIST_TYPE)
            assert problems(resource, kinds[kind]) == [], file.name
    pack = json.loads(result.stdout)
    aliases = [
        r["properties"]["displayName"] for r in pack["resources"] if r["type"] == WATCHLIST_TYPE
    ]
    assert aliases == [
        "CertificateIntel",
        "TrustedCertificateInstallers",
        "ProtectedDomains",
        EXCLUSIONS_ALIAS,
    ]
    sequence = next(
        r
        for r in pack["resources"]
        if r["type"] == RULE_TYPE and "sequence" in r["properties"]["displayName"]
    )
    assert sequence["properties"]["queryPeriod"] == "PT2H"
    assert sequence["properties"]["subTechniques"] == ["T1588.004", "T1553.004", "T1059.001"]


def test_exclusion_watchlist_rows_carry_regexes_that_match_as_the_tuning_globs() -> None:
    regex = glob_regex(r"C:\Program Files\Zscaler\*")
    import re

    assert re.match(regex, r"c:\program files\zscaler\za.exe")
    assert not re.match(regex, r"C:\Users\Public\C:\Program Files\Zscaler\za.exe")


def test_iso_durations() -> None:
    from datetime import timedelta

    assert [
        iso_duration(timedelta(**k)) for k in ({"hours": 1}, {"days": 14}, {"minutes": 90})
    ] == [
        "PT1H",
        "P14D",
        "PT1H30M",
    ]


def test_defender_rules_match_the_graph_detection_rule_shape(rules: list[Rule]) -> None:
    result = _export(rules, "defender")
    bodies = json.loads(result.stdout)
    assert len(bodies) == len(rules)
    for body in bodies:
        assert problems(body, SCHEMA["defender"]) == [], body["displayName"]
        assert body["detectionAction"]["alertTemplate"]["impactedAssets"]
    # Defender requires Timestamp and ReportId: the default pack returns them (and DeviceId, the
    # impacted device); only the verbatim specification rule lacks ReportId, and says so
    missing = {n.rule for n in result.notes if "which Defender requires" in n.message}
    assert missing == {r.name for r in rules if r.pack == "reference"}
    for rule, body in zip(rules, bodies, strict=True):
        if rule.pack == "default":
            assets = body["detectionAction"]["alertTemplate"]["impactedAssets"]
            assert {"@odata.type": DEVICE_ASSET, "identifier": "deviceId"} in assets


# default rules with no Sigma logic written yet: the export skips each with a note naming the
# file to write, and converts the others
NO_SIGMA_YET: frozenset[str] = frozenset()


def test_sigma_passes_pysigma_validators_and_says_what_differs(rules: list[Rule]) -> None:
    result = _export(rules, "sigma")
    assert validate_sigma(result.stdout) == []
    for rule in rules:
        export = sigma_export(rule)
        if rule.path.stem in NO_SIGMA_YET:
            assert export.status == "" and [n.kind for n in export.notes] == ["skipped"]
            assert f"write {rule.path.stem}.sigma.yaml" in export.notes[0].message
            continue
        assert export.status in ("exact", "approximate")
        assert (export.status == "approximate") == bool(export.notes)
    skipped = {n.rule for n in result.notes if n.kind == "skipped"}
    assert skipped == {r.name for r in rules if r.path.stem in NO_SIGMA_YET}


def test_a_rule_without_sigma_logic_is_reported_not_approximated(
    tmp_path: Path, rules: list[Rule]
) -> None:
    source = rules[0].path
    copy = tmp_path / "mine.yaml"
    copy.write_text(
        source.read_text("utf-8").replace(rules[0].id, "00000000-0000-4000-8000-000000000001")
    )
    result = export_rules(load_rules([str(copy)]), "sigma")
    assert result.files == [] and [n.kind for n in result.notes] == ["skipped"]


@pytest.mark.parametrize("fmt", ["splunk", "elastic"])
def test_other_platforms_convert_every_detection(rules: list[Rule], fmt: str) -> None:
    result = _export(rules, fmt)
    assert result.files
    # only correlation types a backend lacks are refused: every plain detection converts,
    # but for the rules with no Sigma logic yet (skipped, each named)
    unwritten = {r.name for r in rules if r.path.stem in NO_SIGMA_YET}
    assert {n.rule for n in result.notes if n.kind == "skipped"} == unwritten
    assert all(
        "Correlation type 'temporal_ordered' is not supported" in n.message
        for n in result.notes
        if n.kind != "skipped"
    )
    suffixes = {Path(f.name).suffix for f in result.files}
    assert suffixes == ({".spl"} if fmt == "splunk" else {".esql", ".eql"})


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("C:\\Windows\\evil", "c_windows_evil"),
        ("a\x1b[31mred\x00", "a_31mred"),
        ("CON", "rule_con"),
        ("...", "rule"),
        ("\u202eexe.cod", "exe_cod"),
    ],
)
def test_file_names_from_rule_names_are_safe(name: str, stem: str) -> None:
    assert safe_stem(name) == stem


def test_clashing_names_get_distinct_stems() -> None:
    stems = unique_stems([("Same", "aaaaaaaa-1"), ("same", "bbbbbbbb-2"), ("SAME", "aaaaaaaa-3")])
    assert len(set(stems)) == 3


def test_arm_of_the_network_pack_carries_the_lists_its_look_alike_rule_reads() -> None:
    result = _export(load_rules(["network"]), "arm")
    pack = json.loads(result.stdout)
    aliases = [
        r["properties"]["displayName"] for r in pack["resources"] if r["type"] == WATCHLIST_TYPE
    ]
    assert aliases[:3] == [
        "CertificateIntel",
        "CertificateBrands",
        "AutomatedCertificateAuthorities",
    ]
    assert "ProtectedDomains" in aliases

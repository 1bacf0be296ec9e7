"""The ARM export never hands ARM an expression it did not write, nor a rule id it cannot hold."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from trustwatch.export.formats import PACK_TEMPLATE, export_rules
from trustwatch.export.sentinel import RULE_TYPE, arm_literals
from trustwatch.rules.model import load_rules
from trustwatch.rules.tuning import default_tuning_path, load_tuning

DEFAULT = Path(__file__).resolve().parents[2] / "src" / "trustwatch" / "content" / "rules"


def _rule(tmp_path: Path, file: str, **changes: str) -> Path:
    source = DEFAULT / "default" / "certutil_download.yaml"
    doc = yaml.safe_load(source.read_text("utf-8"))
    doc.update(changes)
    path = tmp_path / file
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_values_shaped_like_expressions_stay_literal(tmp_path: Path) -> None:
    _rule(
        tmp_path,
        "hostile.yaml",
        id="00000000-0000-4000-8000-0000000000aa",
        name="[listKeys(resourceId('x'), '2020-01-01').keys[0].value]",
        description="[concat('a', 'b')]",
    )
    result = export_rules(load_rules([str(tmp_path)]), "arm", load_tuning(default_tuning_path()))
    (pack,) = [f for f in result.files if f.name == PACK_TEMPLATE]
    template = json.loads(pack.text)
    (resource,) = [r for r in template["resources"] if r["type"] == RULE_TYPE]
    props = resource["properties"]
    assert props["displayName"] == "[[listKeys(resourceId('x'), '2020-01-01').keys[0].value]"
    assert props["description"] == "[[concat('a', 'b')]"
    # every string of the rule's properties that ARM would evaluate is escaped
    strings: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(props)
    assert all(not (s.startswith("[") and s.endswith("]")) or s.startswith("[[") for s in strings)


def test_a_rule_whose_id_is_not_a_guid_is_skipped_with_a_note(tmp_path: Path) -> None:
    _rule(tmp_path, "bad.yaml", id="x'),'/alertRules/evil")
    _rule(tmp_path, "good.yaml", id="00000000-0000-4000-8000-0000000000bb", name="good one")
    result = export_rules(load_rules([str(tmp_path)]), "arm", load_tuning(default_tuning_path()))
    assert [(n.kind, "not a GUID" in n.message) for n in result.notes] == [("skipped", True)]
    pack = next(f for f in result.files if f.name == PACK_TEMPLATE).text
    assert "evil" not in pack and "00000000-0000-4000-8000-0000000000bb" in pack


def test_arm_literals() -> None:
    assert arm_literals("[x]") == "[[x]"
    assert arm_literals("[x") == "[x" and arm_literals("x]") == "x]"
    assert arm_literals({"a": ["[y]", 1, None]}) == {"a": ["[[y]", 1, None]}

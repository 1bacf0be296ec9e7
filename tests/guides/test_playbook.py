"""Playbook commands: quoted for their shell so a hostile value stays one word, or not filled."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from trustwatch.errors import RuleFileError
from trustwatch.guides.bind import alert_values
from trustwatch.guides.model import _parameter, load_library
from trustwatch.guides.playbook import fill_step
from trustwatch.guides.shell import Unquotable, quote_word

LIBRARY = load_library()
THUMB = "7C95805E4F31812C2CF2ACCDDDF7B0591710D668"


def fill(step: str, **values: Any) -> tuple[str, str]:
    values = {"AlertDevice": "ws1", "AlertAccount": "bob", **values}
    filled = fill_step(LIBRARY.steps[step], LIBRARY.parameters, values, LIBRARY.pivots)
    return filled.command, filled.unfilled


def powershell_unquote(word: str) -> str:
    """What PowerShell reads from a single-quoted word (all four quote characters)."""
    assert word[0] == "'" and word[-1] == "'"
    body, out, i = word[1:-1], [], 0
    while i < len(body):
        if body[i] in "'\u2018\u2019\u201a\u201b":
            assert body[i + 1] in "'\u2018\u2019\u201a\u201b", "an unpaired quote ends the word"
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


def test_certutil_and_powershell_commands_for_the_machine_root_store() -> None:
    values = {"AlertCertStore": "Root", "AlertThumbprint": THUMB}
    assert fill("delete-cert-certutil-machine", **values) == (
        f"certutil -delstore Root {THUMB}",
        "",
    )
    assert fill("delete-cert-powershell-machine", **values) == (
        f"Remove-Item -LiteralPath Cert:\\LocalMachine\\Root\\{THUMB}",
        "",
    )
    user = {**values, "AlertStoreSid": "S-1-5-21-1-2-3-1001"}
    assert fill("delete-cert-certutil-user", **user)[0] == f"certutil -user -delstore Root {THUMB}"


@pytest.mark.parametrize(
    "thumbprint",
    [f"{THUMB} & calc", f"{THUMB}\r\ncalc", "Root & del /q C:\\*", THUMB[:-1] + "'"],
    ids=["ampersand", "line-break", "not-hex", "quote"],
)
def test_a_hostile_thumbprint_never_becomes_a_command(thumbprint: str) -> None:
    command, unfilled = fill(
        "delete-cert-certutil-machine", AlertCertStore="Root", AlertThumbprint=thumbprint
    )
    assert command == ""
    assert "AlertThumbprint" in unfilled


def test_a_store_outside_the_known_names_is_refused() -> None:
    command, unfilled = fill(
        "delete-cert-certutil-machine", AlertCertStore="Root & calc", AlertThumbprint=THUMB
    )
    assert command == "" and "AlertCertStore" in unfilled


@pytest.mark.parametrize(
    "path",
    [
        "C:\\Users\\x\\a'; Remove-Item C:\\ -Recurse; '.cer",
        "C:\\Users\\x\\a\u2019; calc; \u2018.cer",
        "C:\\Users\\x\\$(calc).cer",
        "C:\\Users\\x\\a b`n.cer",
    ],
    ids=["quote", "typographic-quote", "subexpression", "backtick"],
)
def test_a_hostile_path_stays_one_powershell_word(path: str) -> None:
    command, unfilled = fill("delete-file", AlertCertFile=path)
    assert unfilled == ""
    prefix = "Remove-Item -LiteralPath "
    assert command.startswith(prefix + "'")
    assert powershell_unquote(command[len(prefix) :]) == path


@pytest.mark.parametrize(
    "path",
    ['C:\\a" & calc & ".cer', "C:\\%COMSPEC%.cer", "C:\\a!x!.cer", "C:\\a\nb.cer"],
    ids=["quote", "percent", "bang", "line-feed"],
)
def test_cmd_and_live_response_refuse_what_they_cannot_quote(path: str) -> None:
    command, unfilled = fill("live-response-collect-file", AlertCertFile=path)
    if '"' in path or "\n" in path:
        assert command == "" and unfilled
    with pytest.raises(Unquotable):
        quote_word(path, "cmd")


def test_cmd_quotes_metacharacters_inside_double_quotes() -> None:
    assert quote_word("C:\\Users\\a & b (x).cer", "cmd") == '"C:\\Users\\a & b (x).cer"'
    assert quote_word("C:\\Users\\a,b=c.cer", "cmd") == '"C:\\Users\\a,b=c.cer"'


@pytest.mark.parametrize("word", ["a b", "$(rm -rf ~)", "x'y", "`id`", "-rf"])
def test_sh_words_read_back_as_one_word(word: str) -> None:
    assert shlex.split(quote_word(word, "sh")) == [word]


def test_a_step_without_its_value_says_so() -> None:
    command, unfilled = fill("delete-cert-certutil-machine", AlertCertStore="Root")
    assert command == "" and unfilled == "the alert has no AlertThumbprint"


USER_SID = "S-1-5-21-2803279060-2513845192-2481671768-7935"
# the demo's WMI scenario: SYSTEM writes a root into a logged-on user's hive (Defender's shape)
SYSTEM_WRITES_USER_ROOT = {
    "DeviceName": "lt-dev-637.corp.northwind.com",
    "AccountName": "system",
    "AccountSid": "S-1-5-18",
    "CertStore": "Root",
    "CertStoreLocation": "CurrentUser",
    "CertThumbprint": THUMB,
    "RegistryKey": f"HKEY_CURRENT_USER\\{USER_SID}\\Software\\Microsoft\\SystemCertificates"
    f"\\Root\\Certificates\\{THUMB}",
}


def user_steps(row: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    values = alert_values({"Evidence": [row]}, LIBRARY.parameters)
    out = {}
    for name in ("certutil", "powershell", "reg"):
        name = f"delete-cert-{name}-user"
        filled = fill_step(LIBRARY.steps[name], LIBRARY.parameters, values, LIBRARY.pivots)
        out[name] = (filled.command, filled.text, filled.unfilled)
    return out


def test_a_user_store_is_cleaned_as_its_owner_not_as_the_writing_process() -> None:
    steps = user_steps(SYSTEM_WRITES_USER_ROOT)
    command, text, unfilled = steps["delete-cert-reg-user"]
    assert unfilled == ""
    assert command == (
        f"reg delete HKU\\{USER_SID}\\Software\\Microsoft\\SystemCertificates\\Root\\Certificates"
        f"\\{THUMB} /f"
    )
    assert "S-1-5-18" not in command  # SYSTEM's own hive would leave the user's root in place
    for name in ("delete-cert-certutil-user", "delete-cert-powershell-user"):
        command, text, unfilled = steps[name]
        assert command and not unfilled
        assert f"the user whose store it is (SID {USER_SID};" in " ".join(text.split())


@pytest.mark.parametrize(
    ("key", "sid"),
    [
        ("", "S-1-5-21-1-2-3-1001"),  # a process event (certutil -user): its account's store
        ("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates", "S-1-5-21-1-2-3-1001"),
        ("HKEY_USERS\\S-1-5-21-9-9-9-500\\Software\\Microsoft", "S-1-5-21-9-9-9-500"),
        ("HKU\\S-1-5-21-9-9-9-500\\Software", "S-1-5-21-9-9-9-500"),
        ("HKEY_CURRENT_USER\\S-1-5-21-9 & calc\\Software", "S-1-5-21-1-2-3-1001"),
    ],
    ids=["process", "machine-key", "hkey-users", "sysmon-hku", "hostile"],
)
def test_the_store_owner_sid_comes_from_the_key_else_the_account(key: str, sid: str) -> None:
    row = {"AccountSid": "S-1-5-21-1-2-3-1001", "RegistryKey": key}
    assert alert_values({"Evidence": [row]}, LIBRARY.parameters)["AlertStoreSid"] == sid


def test_an_extract_expression_needs_a_group() -> None:
    with pytest.raises(RuleFileError, match="needs a group"):
        _parameter("P", {"columns": ["RegistryKey"], "extract": "S-1-[0-9-]+"})
    with pytest.raises(RuleFileError, match="not a regular expression"):
        _parameter("P", {"columns": ["RegistryKey"], "extract": "("})


@pytest.mark.parametrize(
    ("location", "option"),
    [
        ("LocalMachine", ""),
        ("CurrentUser", "-user "),
        ("Policies", "-grouppolicy "),
        ("Enterprise", "-enterprise "),
    ],
)
def test_removal_is_verified_in_the_store_it_was_in(location: str, option: str) -> None:
    """certutil -verifystore without its scope looks in the machine store: a root left in a user
    (or Group Policy, enterprise) store would pass as removed."""
    from trustwatch.guides.playbook import applies

    row = {**SYSTEM_WRITES_USER_ROOT, "CertStoreLocation": location}
    values = alert_values({"Evidence": [row]}, LIBRARY.parameters)
    verify = [s for name, s in LIBRARY.steps.items() if name.startswith("verify-removed")]
    chosen = [s for s in verify if applies(s, values)]
    assert len(chosen) == 1
    filled = fill_step(chosen[0], LIBRARY.parameters, values, LIBRARY.pivots)
    assert filled.command == f"certutil {option}-verifystore Root {THUMB}"


def test_a_guide_that_removes_from_a_store_verifies_that_store() -> None:
    from trustwatch.guides.investigate import guides_of
    from trustwatch.rules.model import load_rules

    pairs = {
        "delete-cert-certutil-machine": "verify-removed",
        "delete-cert-certutil-user": "verify-removed-user",
        "delete-cert-certutil-grouppolicy": "verify-removed-grouppolicy",
        "delete-cert-certutil-enterprise": "verify-removed-enterprise",
    }
    for guide in guides_of(load_rules(("all",))).values():
        steps = {s.id for s in guide.steps}
        for delete, verify in pairs.items():
            if delete in steps:
                assert verify in steps, (guide.path.name, verify)


def test_a_ca_request_is_revoked_and_its_template_read_not_the_ca_isolated() -> None:
    """The AD CS rules' alerts are on the CA: their playbooks act on the request and the
    template (an ESC1 requester is elsewhere; isolating the CA stops every enrolment)."""
    from trustwatch.guides.investigate import guides_of
    from trustwatch.guides.playbook import fill_playbook
    from trustwatch.rules.model import load_rules

    rules = {r.path.stem: r for r in load_rules(("default",))}
    guides = guides_of(list(rules.values()))
    row = {
        "DeviceName": "ca01.contoso.com",
        "TimeGenerated": "2026-03-09T10:00:00Z",
        "RequestId": "58",
        "Template": "VPNUsers",
    }
    values = alert_values({"Evidence": [row]}, LIBRARY.parameters)
    for stem, expected in (
        (
            "adcs_certificate_request_other_identity",
            'certutil -view -restrict "RequestId=58" -out '
            "RequestID,RequesterName,CommonName,CertificateTemplate,SerialNumber,NotAfter",
        ),
        ("adcs_template_changed", "certutil -SetCATemplates -VPNUsers"),
    ):
        steps = fill_playbook(guides[rules[stem].id], values, LIBRARY.pivots)
        ids = [s.step.id for s in steps]
        assert "isolate-device" not in ids
        assert {"adcs-template-settings", "adcs-scope-ca-events"} <= set(ids)
        assert expected in [s.command for s in steps]
        assert "certutil -dstemplate VPNUsers" in [s.command for s in steps]
        assert all(not s.unfilled for s in steps), [s.unfilled for s in steps]


@pytest.mark.parametrize("template", ["VPNUsers,User", "VPN Users", "-VPNUsers", "a&calc"])
def test_a_template_name_that_could_change_the_command_is_refused(template: str) -> None:
    command, unfilled = fill("adcs-unpublish-template", AlertTemplate=template)
    assert command == "" and "AlertTemplate" in unfilled


SIP_KEY = (
    "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Cryptography\\OID\\EncodingType 0\\"
    "CryptSIPDllVerifyIndirectData\\{C689AAB8-8E78-11D0-8C47-00C04FC295EE}"
)


@pytest.mark.parametrize(
    ("key", "command"),
    [
        (SIP_KEY, f'reg query "{SIP_KEY}"'),
        (SIP_KEY + '" & calc & "', ""),
        ("HKEY_LOCAL_MACHINE\\SOFTWARE\\Classes\\x", ""),  # not a provider's key
    ],
    ids=["provider", "hostile", "elsewhere"],
)
def test_a_hijacked_signature_provider_is_read_before_it_is_put_back(
    key: str, command: str
) -> None:
    """The SIP rule's playbook has an eradication step (it had none): read the key, restore it."""
    assert fill("sip-restore-provider", AlertProviderKey=key)[0] == command
    from trustwatch.guides.investigate import guides_of
    from trustwatch.rules.model import load_rules

    [rule] = [r for r in load_rules(("default",)) if r.path.stem == "sip_trust_provider_hijack"]
    steps = guides_of([rule])[rule.id].steps
    assert "sip-restore-provider" in [s.id for s in steps if s.phase == "eradication"]

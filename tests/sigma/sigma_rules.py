"""Small Sigma rules written for these tests (not SigmaHQ's: their text stays in ../shared)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CERTUTIL_URLCACHE = """\
title: Certutil fetches a URL into its cache
id: 6d1c2f0e-3b7a-4d2e-9a51-0c7e8f9b1a23
status: test
description: certutil.exe run with -urlcache and a URL.
author: trustwatch tests
tags:
    - attack.command-and-control
    - attack.t1105
    - attack.stealth
    - attack.t1027.013
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\certutil.exe'
        CommandLine|contains|all:
            - 'urlcache'
            - 'http'
    condition: selection
level: critical
"""

SECURITY_ONLY = """\
title: A security-log rule the XDR pipeline has no table for
id: 0f3e9a1b-5c2d-4e6f-8a7b-9c0d1e2f3a4b
status: test
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4720
    condition: selection
level: low
"""

UNFILLED = """\
title: Reads a column no Sysmon event fills
id: 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\certutil.exe'
        ProcessVersionInfoInternalFileName: 'CertUtil.exe'
    condition: selection
level: informational
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# a Sigma case: its detection and the ReportIds of the rows it must match
Cases = dict[str, tuple[str, list[int]]]


def converted(folder: Path, template: str, cases: Cases, rows: dict[str, Any]) -> list[Any]:
    """Each case's detection written as a rule from ``template`` ({name}, {n}, {detection}),
    converted and compiled over a session of ``rows`` (table -> rows): none may fail."""
    from tests.rules.test_runner import session_of
    from trustwatch.rules.runner import Hunter
    from trustwatch.sigma.load import load_sigma, runnable

    paths = [
        write(folder, f"{name}.yml", template.format(name=name, n=n, detection=detection))
        for n, (name, (detection, _)) in enumerate(cases.items())
    ]
    found = runnable(Hunter(session_of(**rows)), load_sigma(paths))
    assert not found.failures, found.failures  # converted, and compiled
    return list(found.rules)


def matched(result: Any, prefix: str) -> dict[str, list[int]]:
    """The ReportIds of each rule's alert evidence, by rule title less ``prefix``."""
    out: dict[str, list[int]] = {}
    for alert in result.alerts:
        name = str(alert["AlertName"]).removeprefix(prefix)
        out.setdefault(name, []).extend(int(r["ReportId"]) for r in alert["Evidence"])
    return {name: sorted(ids) for name, ids in out.items()}

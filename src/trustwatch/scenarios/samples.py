"""The bundled demo telemetry: chosen scenarios rendered with the default seed.

``./dev demo`` hunts ``src/trustwatch/content/samples/hunt/``. Those files are not written by
hand: they are this module's output, and a test renders them again and compares the bytes, so
they always match the scenarios and renderers. After changing either, regenerate them with::

    .venv/bin/python -m trustwatch.scenarios.samples src/trustwatch/content/samples/hunt
"""

from __future__ import annotations

import sys
from pathlib import Path

from trustwatch.scenarios.model import load_scenarios
from trustwatch.scenarios.render import DEFAULT_SEED, FILE_NAMES, render

# (scenario, telemetry source): attacks and evasions with Windows' own and agents' activity,
# on Sysmon hosts and Defender hosts. Each scenario runs on its own device.
DEMO: tuple[tuple[str, str], ...] = (
    ("spec-test-1-certutil-root", "sysmon"),
    ("spec-test-2-import-certificate", "defender"),
    ("spec-test-3-store-enumeration", "sysmon"),
    ("spec-test-4-certutil-urlcache", "sysmon"),
    ("art-t1553-004-7-wmi-cloned-root", "defender"),
    ("evasion-renamed-certutil", "sysmon"),
    ("evasion-forged-microsoft-root", "sysmon"),
    ("benign-authroot-auto-update", "sysmon"),
    ("benign-gathernetworkinfo", "sysmon"),
    ("benign-zscaler-root-install", "defender"),
)


def demo_files(seed: int = DEFAULT_SEED) -> dict[str, str]:
    """File name -> text of every demo file."""
    scenarios = {s.id: s for s in load_scenarios(sorted({sid for sid, _ in DEMO}))}
    return {
        FILE_NAMES[source].format(id=sid): render(scenarios[sid], source, seed)
        for sid, source in DEMO
    }


def write_demo(out: Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the demo files into ``out`` (created if needed); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in demo_files(seed).items():
        path = out / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m trustwatch.scenarios.samples OUT_DIR")
    for path in write_demo(Path(sys.argv[1])):
        print(path)

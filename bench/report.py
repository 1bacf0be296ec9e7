"""Report size and generation time: the demo's and ../shared/data's, HTML and Markdown.

For each data set: ingest it in memory, hunt it with the default pack and tuning, enrich and
group as ``trustwatch hunt`` does (untimed), then time what ``--report`` adds - the data summary,
every incident investigated (its pivots run), the report built, rendered and written - once per
format, ``--repeat`` times (default 3), and print the median seconds and the file's size.
``--screenshot FILE`` also saves the demo's HTML report at 1280 px in headless Chromium (the
picture in docs/). Usage::

    .venv/bin/python bench/report.py [--repeat 3] [--no-shared] [--screenshot docs/report-demo.png]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from trustwatch.api import Session
from trustwatch.certs.enrich import enrich_hunt
from trustwatch.cli.ingest_cmd import ingest_paths
from trustwatch.incidents import group
from trustwatch.ingest import pipeline
from trustwatch.records import SecurityAlert
from trustwatch.report.build import build_report
from trustwatch.report.gather import data_summary, investigate_incidents
from trustwatch.report.output import renderer_for
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter
from trustwatch.rules.tuning import default_tuning_path, load_tuning

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "trustwatch" / "content" / "samples" / "hunt"
SHARED = ROOT.parent / "shared" / "data"
NOT_YET_READ = {"network"}  # as tests/conftest.py


def measure(name: str, paths: list[str], repeat: int, out: Path) -> Path:
    ws, _, _ = ingest_paths(tuple(paths), None)
    tuning = load_tuning(default_tuning_path(), ())
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    rules = load_rules(("default",))
    result = Hunter(session, tuning).run(rules)
    enrich_hunt(result.alerts, session)
    incidents = group([SecurityAlert.from_record(a) for a in result.alerts])
    html = out / f"{name}.html"
    for path in (html, out / f"{name}.md"):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            report = build_report(
                title="trustwatch hunt report",
                generated="(bench)",
                command=f"bench/report.py {name}",
                hunt=result,
                tuning=tuning,
                data=data_summary(session),
                incidents=incidents,
                investigations=investigate_incidents(incidents, rules, session),
            )
            path.write_text(renderer_for(path)(report), encoding="utf-8")
            times.append(time.perf_counter() - started)
        print(
            f"{name}: {len(result.alerts)} alerts, {len(incidents)} incidents -> {path.suffix} "
            f"{path.stat().st_size / 1024:.0f} KiB in {statistics.median(times):.2f} s "
            f"(median of {repeat})"
        )
    return html


def screenshot(html: Path, target: Path) -> None:
    from playwright.sync_api import sync_playwright

    found = ("/usr/lib/chromium/chromium", shutil.which("chromium"))
    executable = next(p for p in found if p and Path(p).exists())
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(html.as_uri())
        # the first incident: title, chain, narrative, entities, timeline, its first alert
        page.evaluate("document.querySelector('section.incident').scrollIntoView(true)")
        page.screenshot(path=str(target))
        browser.close()
    print(f"screenshot: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-shared", action="store_true")
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        html = measure("demo", [str(DEMO)], args.repeat, out)
        if args.screenshot:
            screenshot(html, args.screenshot)
        if not args.no_shared and SHARED.is_dir():
            paths = [str(p) for p in sorted(SHARED.iterdir()) if p.name not in NOT_YET_READ]
            measure("shared", paths, args.repeat, out)


if __name__ == "__main__":
    main()

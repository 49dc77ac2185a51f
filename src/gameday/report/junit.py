"""JUnit XML from the journal: one testcase per scenario, measurements as properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gameday.journal import JournalRecord
from gameday.report.figures import scenario_measurements


def render_junit(journal: JournalRecord) -> str:
    scenarios = journal["scenarios"]
    suite = ET.Element(
        "testsuite",
        name="gameday",
        tests=str(len(scenarios)),
        failures=str(sum(s["status"] == "failed" for s in scenarios)),
        errors=str(sum(s["status"] in ("error", "interrupted") for s in scenarios)),
        skipped=str(sum(s["status"] == "skipped" for s in scenarios)),
        time=f"{sum(s['duration_s'] or 0 for s in scenarios):.3f}",
        timestamp=journal["start"],
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="run_id", value=journal["run_id"])
    for scenario in scenarios:
        case = ET.SubElement(
            suite, "testcase", classname=scenario["feature"], name=scenario["name"],
            time=f"{scenario['duration_s'] or 0:.3f}",
        )
        case_props = ET.SubElement(case, "properties")
        for m in scenario_measurements(scenario):
            value = f"{m['value']:.6g} {m['unit']}"
            if m["target"] is not None:
                value += f" (target {'<=' if m['bound'] == 'max' else '>='} {m['target']:g})"
            ET.SubElement(case_props, "property", name=f"{m['name']} [{m['fidelity']}]", value=value)
        message = scenario.get("error") or ("interrupted" if scenario["status"] == "interrupted" else "")
        if scenario["status"] == "failed":
            ET.SubElement(case, "failure", message=message).text = message
        elif scenario["status"] in ("error", "interrupted"):
            ET.SubElement(case, "error", message=message).text = message
        elif scenario["status"] == "skipped":
            ET.SubElement(case, "skipped", message=message)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

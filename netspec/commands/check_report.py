"""What `netspec check` found, in the formats CI reads: GitHub annotations, JSON, SARIF 2.1.0
(code scanning) and JUnit XML (test reports).

Each checked file yields findings: its spec errors (rule `spec-error`) or the budgets it
crosses (`budget-*`, or the `size-warning` above the default size). Strings reach XML
through ElementTree (escaped) and JSON through json.dumps, never by formatting.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from netspec.compiler.budget import RULES
from netspec.errors import Location

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/netspec/netspec"


@dataclass(frozen=True)
class Finding:
    rule: str
    level: str  # "error" or "warning"
    message: str
    location: Location | None


@dataclass
class FileReport:
    path: Path
    ok: bool  # a valid spec (it may still cross a budget)
    findings: list[Finding]
    summary: dict[str, Any]  # layers, params, macs, ... of a valid spec

    @property
    def failed(self) -> bool:
        return any(f.level == "error" for f in self.findings)


def _escape(text: str, *, property: bool = False) -> str:
    """GitHub workflow-command escaping (messages: % CR LF; properties also : and ,)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property else text


def github(report: FileReport, finding: Finding) -> str:
    loc = finding.location
    if loc is None:
        return f"::{finding.level} file={_escape(str(report.path), property=True)}::{_escape(finding.message)}"
    return f"::{finding.level} file={_escape(loc.file, property=True)},line={loc.line},col={loc.col}::{_escape(finding.message)}"


def as_json(reports: list[FileReport]) -> str:
    out = []
    for r in reports:
        entry: dict[str, Any] = {"file": str(r.path), "ok": r.ok and not r.failed, **r.summary}
        for level, key in (("error", "errors"), ("warning", "warnings")):
            items = [
                {**({"rule": f.rule} if f.rule != "spec-error" else {}), "message": f.message,
                 **({"line": f.location.line, "col": f.location.col} if f.location else {})}
                for f in r.findings if f.level == level
            ]
            if items:
                entry[key] = items
        out.append(entry)
    return json.dumps(out, indent=2)


def sarif(reports: list[FileReport], version: str) -> str:
    """One SARIF 2.1.0 run: the tool with its rules, one result per finding at its spec line."""
    rule_ids = list(RULES)
    results = []
    for r in reports:
        for f in r.findings:
            loc = f.location
            physical: dict[str, Any] = {"artifactLocation": {"uri": Path(loc.file if loc else r.path).as_posix()}}
            if loc is not None:
                physical["region"] = {"startLine": loc.line, "startColumn": loc.col}
            else:
                physical["region"] = {"startLine": 1}
            results.append({
                "ruleId": f.rule,
                "ruleIndex": rule_ids.index(f.rule),
                "level": f.level,
                "message": {"text": f.message},
                "locations": [{"physicalLocation": physical}],
            })
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "netspec",
                "version": version,
                "informationUri": INFO_URI,
                "rules": [{"id": rid, "shortDescription": {"text": text}} for rid, text in RULES.items()],
            }},
            "results": results,
        }],
    }
    return json.dumps(log, indent=2)


def junit(reports: list[FileReport]) -> str:
    """One testsuite, one testcase per spec; errors become a <failure>, warnings <system-out>."""
    suite = ElementTree.Element("testsuite", name="netspec check", tests=str(len(reports)),
                                failures=str(sum(r.failed for r in reports)), errors="0", skipped="0")
    for r in reports:
        case = ElementTree.SubElement(suite, "testcase", classname="netspec.check", name=str(r.path), file=str(r.path))
        errors = [f for f in r.findings if f.level == "error"]
        warnings = [f for f in r.findings if f.level == "warning"]
        if errors:
            lines = [f"{f.location}: {f.message}" if f.location else f.message for f in errors]
            failure = ElementTree.SubElement(case, "failure", message=lines[0], type=errors[0].rule)
            failure.text = "\n".join(lines)
        if warnings:
            ElementTree.SubElement(case, "system-out").text = "\n".join(f"warning: {f.message}" for f in warnings)
    root = ElementTree.Element("testsuites")
    root.append(suite)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)

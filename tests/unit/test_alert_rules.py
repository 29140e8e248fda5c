"""Alert rules: rendered with the prometheus role's defaults, then `promtool test rules`."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import jinja2
import yaml
from lpse_runbooks.site import Site

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "prometheus"
RULES = ROLE / "templates/etc/prometheus/rules/lpse-alerts.yml.j2"
NATIONAL = ROLE / "templates/etc/prometheus/rules/lpse-national.yml.j2"
TESTS = REPO / "tests" / "promtool" / "lpse-alerts.test.yml"
ANNOTATION_TESTS = REPO / "tests" / "promtool" / "lpse-alerts-annotations.test.yml"
HOURS_TESTS = REPO / "tests" / "promtool" / "lpse-alerts-hours.test.yml"
DAYS_TESTS = REPO / "tests" / "promtool" / "lpse-alerts-days.test.yml"
NATIONAL_TESTS = REPO / "tests" / "promtool" / "lpse-national.test.yml"


def render(tmp_path: Path, site_vars: Mapping[str, object] | None = None, rules: Path = RULES) -> Path:
    """The rules as the role writes them: the site's variables over the role's defaults."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(rules.parent), undefined=jinja2.StrictUndefined)
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in str(text).splitlines())
    variables = yaml.safe_load((ROLE / "defaults/main.yml").read_text()) | (site_vars or {})
    out = tmp_path / rules.name.removesuffix(".j2")
    out.write_text(env.get_template(rules.name).render(**variables, ansible_managed="rendered by the test"))
    return out


def write_rules_without_annotations(tmp_path: Path) -> None:
    """The rendered alert rules as the promtool test files load them: promtool compares
    annotations exactly, and their wording is tested in lpse-alerts-annotations.test.yml."""
    rules = yaml.safe_load(render(tmp_path).read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "lpse-alerts-no-annotations.yml").write_text(yaml.safe_dump(rules))


def test_the_status_screen_and_the_rules_read_one_set_of_thresholds(tmp_path: Path) -> None:
    """A threshold set in the monitoring server's inventory reaches both the rule and `fab status`
    (which judges with Site.thresholds; tests/lab/test_runbooks.py sees it flag on the lab)."""
    inv = tmp_path / "inv"
    shutil.copytree(REPO / "inventories/lab", inv)
    site_vars = {"prometheus_alert_memory_critical_ratio": 0.15, "prometheus_alert_backup_stale_hours": 30}
    (inv / "group_vars/monitoring_servers/thresholds.yml").write_text(yaml.safe_dump(site_vars))
    usual, changed = Site.load(REPO / "inventories/lab").thresholds, Site.load(inv).thresholds
    assert (changed.memory_critical_ratio, changed.backup_stale_hours) == (0.15, 30)
    assert changed.disk_critical_ratio == usual.disk_critical_ratio  # not set: the role's default
    rules = render(tmp_path, site_vars).read_text()
    assert f"lpse_memory_total_bytes < {changed.memory_critical_ratio}" in rules
    assert f"> {changed.backup_stale_hours:g} * 3600" in rules
    assert f"lpse_memory_total_bytes < {usual.memory_critical_ratio}" in render(tmp_path).read_text()


def test_rules_are_valid(tmp_path: Path) -> None:
    res = subprocess.run(["promtool", "check", "rules", str(render(tmp_path))], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_has_bilingual_annotations_and_a_runbook(tmp_path: Path) -> None:
    groups = yaml.safe_load(render(tmp_path).read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 15
    for rule in alerts:
        ann = rule["annotations"]
        assert {"summary", "description", "summary_en", "description_en", "runbook_url"} <= set(ann), rule["alert"]
        assert ann["runbook_url"].endswith("#" + rule["alert"].lower())
        assert rule["labels"]["severity"] in ("critical", "warning", "none")


def test_every_alert_is_unit_tested(tmp_path: Path) -> None:
    groups = yaml.safe_load(render(tmp_path).read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    tested = {
        t["alertname"]
        for f in (TESTS, HOURS_TESTS, DAYS_TESTS)
        for case in yaml.safe_load(f.read_text())["tests"]
        for t in case["alert_rule_test"]
    }
    assert alerts == tested


def test_promtool_rule_tests_pass(tmp_path: Path) -> None:
    write_rules_without_annotations(tmp_path)
    files = (TESTS, ANNOTATION_TESTS, HOURS_TESTS, DAYS_TESTS)
    for tests in files:
        shutil.copy(tests, tmp_path / tests.name)
    res = subprocess.run(
        ["promtool", "test", "rules", *(f.name for f in files)], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(files)


def test_the_national_contract_is_computed_as_documented(tmp_path: Path) -> None:
    """The contract's recording rules (promtool-tested), and every series of it is documented for
    LKPP in both languages."""
    write_rules_without_annotations(tmp_path)
    contract = {
        "__prometheus_national_contract_version": yaml.safe_load((ROLE / "vars/main.yml").read_text())[
            "__prometheus_national_contract_version"
        ],
        "prometheus_lpse_ops_version": "test",
        "__prometheus_config_fingerprint": "0123456789abcdef",
    }
    national = render(tmp_path, contract, NATIONAL)
    check = subprocess.run(["promtool", "check", "rules", str(national)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    shutil.copy(NATIONAL_TESTS, tmp_path / NATIONAL_TESTS.name)
    res = subprocess.run(
        ["promtool", "test", "rules", NATIONAL_TESTS.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    series = {r["record"] for g in yaml.safe_load(national.read_text())["groups"] for r in g["rules"]}
    cases = yaml.safe_load(NATIONAL_TESTS.read_text())["tests"]
    tested = {t["expr"] for case in cases for t in case["promql_expr_test"]}
    helpers = {"lpse_national:spse_up_outside_maintenance", "lpse_national:outside_maintenance"}
    assert {s for s in series - helpers if not any(s in expr for expr in tested)} == set()
    doc = (REPO / "docs/national-telemetry.md").read_text()
    for name in series - helpers:
        assert doc.count(f"`{name}`") >= 2, f"{name} is not in both languages of docs/national-telemetry.md"


def test_every_alert_has_a_runbook_section(tmp_path: Path) -> None:
    groups = yaml.safe_load(render(tmp_path).read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    runbook = (REPO / "docs/runbooks/alerts.md").read_text()
    sections = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    assert alerts == sections


def test_every_runbook_section_names_on_call_tasks_that_exist() -> None:
    """Each alert's section says which fab task to run, and every task it names is in fabfile.py."""
    import fabfile

    tasks = set(fabfile.ns.task_names)
    runbook = (REPO / "docs/runbooks/alerts.md").read_text()
    for section in runbook.split("\n## ")[1:]:
        name = section.splitlines()[0].strip()
        assert "**Tugas / Task:**" in section, f"{name}: no task line"
        named = re.findall(r"`fab ([a-z-]+)", section)
        assert set(named) <= tasks, f"{name} names tasks that do not exist: {set(named) - tasks}"
    assert re.findall(r"`fab ([a-z-]+)", runbook), "the runbook names no task at all"

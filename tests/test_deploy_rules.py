"""The shipped Prometheus rules and Alertmanager config, checked by the real tools."""

import subprocess
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=DEPLOY, capture_output=True, text=True, timeout=60)


def test_rules_are_valid() -> None:
    out = run("promtool", "check", "rules", "auditwatch-rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "7 rules found" in out.stdout


def test_rules_unit_tests_pass() -> None:
    out = run("promtool", "test", "rules", "auditwatch-rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_alertmanager_config_is_valid() -> None:
    out = run("amtool", "check-config", "alertmanager.yml")
    assert out.returncode == 0, out.stdout + out.stderr

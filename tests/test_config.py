from pathlib import Path

import pytest

from detector.config import load_settings
from detector.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "auditwatch.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    settings = load_settings(None)
    assert settings.kafka.group_id == "auditwatch"
    assert settings.elasticsearch.hosts == []  # -> embedded SQLite store


def test_file_values_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[kafka]\ngroup_id = "soc"\nmax_poll_records = 5\n')
    monkeypatch.setenv("AUDITWATCH_KAFKA__MAX_POLL_RECORDS", "9")
    settings = load_settings(path)
    assert settings.kafka.group_id == "soc"
    assert settings.kafka.max_poll_records == 9


def test_bad_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[kafka]\nmax_poll_records = 0\nbogus = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "kafka.max_poll_records" in str(err.value)
    assert "kafka.bogus" in str(err.value)


def test_secret_in_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[elasticsearch]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="AUDITWATCH_ELASTICSEARCH__PASSWORD"):
        load_settings(path)


def test_secret_from_env_or_file_is_never_dumped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("s3cret-api-key\n")
    path = write(tmp_path, f'[elasticsearch]\napi_key_file = "{secret_file}"\n')
    monkeypatch.setenv("AUDITWATCH_ELASTICSEARCH__PASSWORD", "hunter2")
    settings = load_settings(path)
    assert settings.elasticsearch.api_key is not None
    assert settings.elasticsearch.api_key.get_secret_value() == "s3cret-api-key"
    dump = str(settings.redacted_dump())
    assert "hunter2" not in dump and "s3cret" not in dump


def test_pseudonymise_requires_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[privacy]\npseudonymise = true\n")
    with pytest.raises(ConfigError, match="PSEUDONYMISE_KEY"):
        load_settings(path)


def test_heartbeat_must_fit_session(tmp_path: Path) -> None:
    path = write(tmp_path, "[kafka]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 3000\n")
    with pytest.raises(ConfigError, match="heartbeat"):
        load_settings(path)


def test_cli_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from detector.cli import main

    good = write(tmp_path, '[kafka]\ngroup_id = "soc"\n')
    assert main(["check-config", str(good), "--models", "models"]) == 0
    assert "configuration OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka]\nmax_poll_records = -1\n")
    assert main(["check-config", str(bad)]) == 1
    assert "kafka.max_poll_records" in capsys.readouterr().err

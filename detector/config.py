"""Settings: one typed, frozen object built once at start-up.

Sources, lowest to highest precedence: embedded defaults, a TOML file, then
``AUDITWATCH_*`` environment variables (``__`` separates sections, e.g.
``AUDITWATCH_KAFKA__BOOTSTRAP_SERVERS``). Secrets are ``SecretStr``: they may
come from the environment or a ``*_file`` path, never from the TOML file, and
only ``redacted_dump()`` is ever printed.
"""

from __future__ import annotations

import tomllib
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from detector.errors import ConfigError

CONFLUENT_MISSING = (
    'kafka.backend = "confluent" needs the confluent-kafka package:'
    " pip install 'auditwatch[confluent]'"
)
SECRET_KEYS = ("password", "api_key", "sasl_password", "pseudonymise_key", "ssl_password")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    # confluent-kafka (librdkafka, optional extra) consumes several times faster.
    backend: Literal["kafka-python", "confluent"] = "kafka-python"
    bootstrap_servers: list[str] = ["127.0.0.1:9092"]
    group_id: str = "auditwatch"
    client_id: str = "auditwatch"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    session_timeout_ms: int = Field(10_000, ge=1000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    max_poll_records: int = Field(2_000, ge=1)
    poll_timeout_ms: int = Field(500, ge=0)
    # The broker holds a fetch up to fetch_max_wait_ms for data; one fetch returns at most
    # max_partition_fetch_bytes per partition. Defaults sized for ~1 KB audit records.
    fetch_max_wait_ms: int = Field(100, ge=0)
    max_partition_fetch_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    dead_letter_topic: str = "auditwatch-dead-letter"

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> KafkaSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self

    @field_validator("backend")
    @classmethod
    def _backend_installed(cls, backend: str) -> str:
        if backend == "confluent" and find_spec("confluent_kafka") is None:
            raise ValueError(CONFLUENT_MISSING)
        return backend


class ElasticsearchSettings(_Section):
    hosts: list[str] = []  # empty: alerts go to the embedded SQLite store
    index_prefix: str = "auditwatch-alerts"
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    compat_plain_json: bool = (
        False  # for OpenSearch-compatible servers that reject ES 9 media types
    )
    request_timeout: float = Field(10.0, gt=0)


class SqliteSettings(_Section):
    path: Path = Path("auditwatch-alerts.db")


class FilesSettings(_Section):
    alerts_jsonl: Path | None = None
    dead_letter_jsonl: Path = Path("auditwatch-dead-letter.jsonl")  # used by `score`


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)


class ParsingSettings(_Section):
    resource_fields: list[str] = ["url.path", "file.path", "destination.address", "url.domain"]
    bytes_out_fields: list[str] = [
        "destination.bytes",
        "http.response.body.bytes",
        "http.response.bytes",
    ]
    bytes_in_fields: list[str] = ["source.bytes", "http.request.body.bytes", "http.request.bytes"]
    rows_fields: list[str] = ["db.response.returned_rows", "auditwatch.rows"]
    max_message_bytes: int = Field(1_048_576, ge=1024)


class PrivacySettings(_Section):
    pseudonymise: bool = False
    pseudonymise_key: SecretStr | None = None

    @model_validator(mode="after")
    def _key_when_enabled(self) -> PrivacySettings:
        if self.pseudonymise and not self.pseudonymise_key:
            raise ValueError(
                "pseudonymise is on but no key: set AUDITWATCH_PRIVACY__PSEUDONYMISE_KEY"
                " or privacy.pseudonymise_key_file"
            )
        return self


class DeliverySettings(_Section):
    # While a sink is down, each sink's alerts queue in memory up to memory_alerts, then in a
    # spool file (state.dir/spool) up to spool_max_mb; beyond that consumption pauses.
    memory_alerts: int = Field(10_000, ge=0)
    spool_max_mb: float = Field(512.0, gt=0)
    # /healthz reports "stalled" (HTTP 503) when the loop has not turned for this long.
    stall_after_s: float = Field(120.0, gt=0)


class StateSettings(_Section):
    # Per topic-partition checkpoints of feature + model state and the offset they reflect.
    enabled: bool = True
    dir: Path = Path("auditwatch-state")
    checkpoint_interval_s: float = Field(30.0, gt=0)
    # A corrupt or foreign checkpoint stops the daemon ("fail"), or is moved aside and that
    # partition restarts with empty state from the committed offset ("fresh").
    on_invalid: Literal["fail", "fresh"] = "fail"


class Settings(BaseSettings):
    """All of auditwatch's settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="AUDITWATCH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    models_dir: Path = Path("models")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_deadline_s: float = Field(20.0, gt=0)
    kafka: KafkaSettings = KafkaSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    sqlite: SqliteSettings = SqliteSettings()
    files: FilesSettings = FilesSettings()
    metrics: MetricsSettings = MetricsSettings()
    parsing: ParsingSettings = ParsingSettings()
    privacy: PrivacySettings = PrivacySettings()
    state: StateSettings = StateSettings()
    delivery: DeliverySettings = DeliverySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # environment overrides the TOML file

    def redacted_dump(self) -> dict[str, Any]:
        """Settings as a dict, secrets shown as '**********' (safe to log)."""
        return self.model_dump(mode="json")  # SecretStr dumps masked in json mode


def load_settings(path: Path | None = None) -> Settings:
    """Build settings from an optional TOML file and the environment.

    Raises ConfigError naming the bad key, e.g. ``kafka.max_poll_records: ...``.
    """
    data = _read_toml(path) if path else {}
    _reject_inline_secrets(data, path)
    _load_secret_files(data)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _reject_inline_secrets(data: dict[str, Any], path: Path | None, prefix: str = "") -> None:
    """Secrets in a config file end up in repos and backups; accept them only via env/files."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _reject_inline_secrets(value, path, dotted + ".")
        elif key in SECRET_KEYS:
            env_name = "AUDITWATCH_" + dotted.upper().replace(".", "__")
            raise ConfigError(
                f"{path}: {dotted}: secrets are not read from the config file;"
                f" set {env_name} or {dotted}_file"
            )


def _load_secret_files(data: dict[str, Any]) -> None:
    """Replace ``<secret>_file = "/path"`` entries by the file's stripped content."""
    for section in data.values():
        if not isinstance(section, dict):
            continue
        for key in [k for k in section if k.endswith("_file") and k[:-5] in SECRET_KEYS]:
            secret_path = Path(section.pop(key))
            try:
                section[key[:-5]] = secret_path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{key}: cannot read {secret_path}: {exc.strerror}") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f"{path}: " if path else ""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}{key}: {err['msg']}")
    return "\n".join(lines)

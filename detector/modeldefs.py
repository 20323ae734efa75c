"""Declarative model definitions: one TOML file per stream in ``models/``.

A definition names the input topics and formats, the entity key, the features,
the detector and its parameters, and the alert budget. See docs/models.md.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detector.errors import ConfigError
from detector.features import FEATURE_NAMES

ENTITY_KEYS = ("entity", "user_name", "user_id", "source_ip", "service", "model")
FORMATS_BY_KIND = {"access": ("cloudtrail", "ecs"), "inference": ("inference",)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorSpec(_Strict):
    algorithm: Literal["online_iforest", "half_space_trees", "sliding_iforest"] = "online_iforest"
    seed: int = 42
    block_size: int = Field(256, ge=16, le=65_536)  # events scored before the model learns
    warmup_events: int = Field(1_024, ge=0)  # learn-only prefix: no severities, no alerts
    params: dict[str, Any] = {}


class AlertSpec(_Strict):
    budget_per_10k: float = Field(10.0, gt=0, le=10_000)  # alerts per 10,000 events
    learn_from_alerts: bool = False
    # events at or above this severity are not learned from either (1-in-100 by default):
    # without it a slowly ramping attack teaches the model, step by step, that it is normal
    learn_below_severity: float = Field(40.0, ge=0, le=100)
    # while an entity bursts (5-minute rate > 4x its usual), at most this many of its events
    # per block are learned and calibrated on (0: no limit): one key's extraction burst must
    # become neither the model's normal nor the severity scale's
    max_learned_per_entity: int = Field(0, ge=0)
    max_explanations: int = Field(3, ge=1, le=10)
    calibration_window: int = Field(20_000, ge=1_000)


class EntitySpec(_Strict):
    max_entities: int = Field(100_000, ge=1)
    ttl_days: float = Field(30.0, gt=0)
    cold_start_events: int = Field(20, ge=0)
    max_keys_per_entity: int = Field(64, ge=4)


class ModelSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    version: str = "1"
    description: str = ""
    kind: Literal["access", "inference"]
    topics: list[str] = Field(min_length=1)
    formats: list[Literal["cloudtrail", "ecs", "inference"]] = []
    entity_key: Literal[ENTITY_KEYS] = "entity"  # type: ignore[valid-type]
    features: list[str] = []
    detector: DetectorSpec = DetectorSpec()
    alerts: AlertSpec = AlertSpec()
    entities: EntitySpec = EntitySpec()

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        known = FEATURE_NAMES[self.kind]
        unknown = [f for f in self.features if f not in known]
        if unknown:
            raise ValueError(f"unknown {self.kind} features {unknown}; known: {list(known)}")
        wrong = [f for f in self.formats if f not in FORMATS_BY_KIND[self.kind]]
        if wrong:
            raise ValueError(f"formats {wrong} do not carry {self.kind} events")
        if self.detector.warmup_events % self.detector.block_size:
            raise ValueError("detector.warmup_events must be a multiple of detector.block_size")
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.features) if self.features else FEATURE_NAMES[self.kind]

    @property
    def accepted_formats(self) -> tuple[str, ...]:
        return tuple(self.formats) if self.formats else FORMATS_BY_KIND[self.kind]


def load_model(path: Path) -> ModelSpec:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return ModelSpec(**data)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError("\n".join(problems)) from None


def load_models(directory: Path | None) -> list[ModelSpec]:
    """All ``*.toml`` in ``directory``, or the embedded defaults when it is None/missing."""
    if directory is not None and directory.is_dir():
        paths = sorted(directory.glob("*.toml"))
        if not paths:
            raise ConfigError(f"{directory}: no model definitions (*.toml)")
        specs = [load_model(p) for p in paths]
    else:
        specs = embedded_models()
    names = [s.name for s in specs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"duplicate model names: {sorted(duplicates)}")
    return specs


def embedded_models() -> list[ModelSpec]:
    folder = resources.files("detector") / "assets" / "models"
    specs = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            with resources.as_file(entry) as path:
                specs.append(load_model(path))
    return specs

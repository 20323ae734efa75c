"""Per-entity behaviour features: access events and ML-inference events."""

from collections.abc import Callable
from typing import Any

from detector.features.access import ACCESS_FEATURES, AccessFeaturizer
from detector.features.common import EntityLimits, FeatureState
from detector.features.inference import INFERENCE_FEATURES, InferenceFeaturizer

FEATURIZERS: dict[str, Callable[[EntityLimits | None], Any]] = {
    "access": AccessFeaturizer,
    "inference": InferenceFeaturizer,
}
FEATURE_NAMES = {"access": ACCESS_FEATURES, "inference": INFERENCE_FEATURES}

__all__ = ["FEATURE_NAMES", "FEATURIZERS", "EntityLimits", "FeatureState"]

"""fairlib: finding and mitigating bias in vision models (the library behind the course)."""

from fairlib import metrics
from fairlib.config import (
    DEFAULT_PROFILE,
    PROFILES,
    get_device,
    get_profile,
    profile_note,
    seed_everything,
    select,
)
from fairlib.metrics import (
    accuracy_gap,
    accuracy_variance,
    attribute_bias_amplification,
    bias_amplification,
    bias_amplification_table,
    bias_transfer_score,
    calibration_bins,
    expected_calibration_error,
    group_accuracy,
    label_interrelation,
    threshold_calibration_bias,
    uncertainty_rate,
    worst_group_accuracy,
)

__version__ = "0.1.0"

__all__ = [
    "metrics",
    "DEFAULT_PROFILE",
    "PROFILES",
    "get_device",
    "get_profile",
    "profile_note",
    "seed_everything",
    "select",
    "accuracy_gap",
    "accuracy_variance",
    "attribute_bias_amplification",
    "bias_amplification",
    "bias_amplification_table",
    "bias_transfer_score",
    "calibration_bins",
    "expected_calibration_error",
    "group_accuracy",
    "label_interrelation",
    "threshold_calibration_bias",
    "uncertainty_rate",
    "worst_group_accuracy",
]

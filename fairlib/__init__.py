"""fairlib: finding and mitigating bias in vision models (the library behind the course)."""

from fairlib.config import (
    DEFAULT_PROFILE,
    PROFILES,
    get_device,
    get_profile,
    profile_note,
    seed_everything,
    select,
)

__version__ = "0.1.0"

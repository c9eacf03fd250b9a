"""What a classify run reports: its own module so that the CLI can say "nothing to classify"
without importing the pipeline (and, through it, scikit-learn: seconds at start-up)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ClassifyReport:
    items: int = 0
    classified: int = 0
    inherited: int = 0
    # items marked for classification again while being classified (an analyst's correction,
    # a new text): their tags are left unwritten and their mark kept for the next run
    changed: int = 0
    # items classified whose analyst corrections were kept: said, so that an analyst who runs
    # `classify --all` sees the corrections survived it
    corrected: int = 0
    policy: int = 0
    seconds: float = 0.0
    model_version: str = ""
    model: str | None = None  # the trained model's version, None when rules were used
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

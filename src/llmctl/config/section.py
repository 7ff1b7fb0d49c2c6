"""What every config section shares: strict keys, validators built once (see `model._build`), field patterns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
DURATION = r"^[0-9]+(ms|s|m|h|d|w|y)$"


class Section(BaseModel):
    # built once, by model._build(), rather than as each class is defined
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)

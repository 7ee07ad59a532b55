"""The config schema itself: every field described, strict everywhere, driver tags registered."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from gateway.config import models


def _all_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [models.Config]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            for candidate in _models_in(field.annotation):
                pending.append(candidate)
    return found


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


@pytest.mark.parametrize("model", _all_models(), ids=lambda m: m.__name__)
def test_every_config_field_is_described(model: type[BaseModel]) -> None:
    undescribed = [name for name, field in model.model_fields.items() if not (field.description or "").strip()]
    assert not undescribed, f"{model.__name__} fields without a description: {undescribed}"


@pytest.mark.parametrize("model", _all_models(), ids=lambda m: m.__name__)
def test_every_config_model_forbids_unknown_keys(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"


def test_schema_reaches_the_nested_tables() -> None:
    names = {m.__name__ for m in _all_models()}
    assert {"Config", "MqttConfig", "StoreConfig", "OutboxConfig", "SimProbeConfig", "DhtProbeConfig",
            "LoggingConfig", "ThresholdConfig", "UpsConfig"} <= names


def test_every_probe_driver_is_registered_for_error_messages() -> None:
    # the loader explains errors inside [[probes]] through this registry
    for driver, model in models.PROBE_DRIVERS.items():
        assert driver in model.model_fields["driver"].annotation.__args__

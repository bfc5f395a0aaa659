"""Shared broker settings: the retry schedules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imgpipe_contracts.topology import NOTIFIER_REQUEST_COMPLETED, PROCESSOR_IMAGE_REQUESTED
from imgpipe_runtime.settings import BrokerSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RETRY_DELAYS", "WEBHOOK_RETRY_DELAYS", "BROKER_PREFIX", "DELIVERY_LIMIT"):
        monkeypatch.delenv(name, raising=False)


def test_default_retry_schedules() -> None:
    settings = BrokerSettings()

    assert settings.retry_delays == (1.0, 5.0, 30.0)
    assert settings.webhook_retry_delays == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)


@pytest.mark.parametrize("text", ["1,5,30", "1 5 30", "1, 5, 30", " 1,,5  30 ", "1.0,5.0,30.0"])
def test_retry_delays_text_is_split_on_commas_and_spaces_into_floats(text: str) -> None:
    delays = BrokerSettings(retry_delays=text).retry_delays

    assert delays == (1.0, 5.0, 30.0)
    assert all(type(d) is float for d in delays)


def test_fractional_delays_are_kept() -> None:
    assert BrokerSettings(webhook_retry_delays="0.3,0.6,1").webhook_retry_delays == (0.3, 0.6, 1.0)


def test_retry_delays_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_DELAYS", "0.2 0.5")
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "2,4")

    settings = BrokerSettings()

    assert (settings.retry_delays, settings.webhook_retry_delays) == ((0.2, 0.5), (2.0, 4.0))


def test_a_tuple_of_delays_is_accepted_as_is() -> None:
    assert BrokerSettings(retry_delays=(2, 3)).retry_delays == (2.0, 3.0)


@pytest.mark.parametrize("text", ["0", "1,0,5", "1,-5", "-0.5", "", " , "])
@pytest.mark.parametrize("field", ["retry_delays", "webhook_retry_delays"])
def test_zero_negative_or_missing_delays_are_refused(field: str, text: str) -> None:
    with pytest.raises(ValidationError, match="give one or more positive delays"):
        BrokerSettings(**{field: text})


@pytest.mark.parametrize("text", ["1,five,30", "1;5;30", "1s,5s"])
def test_delays_that_are_not_numbers_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        BrokerSettings(retry_delays=text)


@pytest.mark.parametrize("text", ["1,nan", "1,inf"])
def test_delays_that_are_not_finite_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        BrokerSettings(retry_delays=text)


def test_topology_uses_the_configured_prefix_delays_and_limit() -> None:
    settings = BrokerSettings(
        broker_prefix="t-1.", retry_delays="0.2,0.5", webhook_retry_delays="3", delivery_limit=7
    )

    topology = settings.topology()

    assert topology.prefix == "t-1."
    assert topology.retry_delays(PROCESSOR_IMAGE_REQUESTED) == (0.2, 0.5)
    assert topology.retry_delays(NOTIFIER_REQUEST_COMPLETED) == (3.0,)
    assert topology.delivery_limit == 7
    assert topology.retry_queue(PROCESSOR_IMAGE_REQUESTED, 0.2) == (
        "t-1.processor.image-requested.retry-200ms"
    )

"""The rules of reuse (imgpipe_processor.caching): lifetimes from an origin's headers
(RFC 9111), conditional requests (RFC 9110 §13), scopes and the names that make reuse exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imgpipe_processor.caching import (
    SHARED_SCOPE,
    answer_changed,
    conditional_headers,
    directives,
    freshness,
    may_skip_asking,
    output_fingerprint,
    output_id,
    scope_of,
    shared_key,
    source_id,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_max_age_makes_an_answer_fresh_for_that_long_less_its_age() -> None:
    found = freshness({"cache-control": "public, max-age=600", "age": "100"}, NOW)
    assert found.storable
    assert found.fresh_until == NOW + timedelta(seconds=500)


def test_an_answer_older_than_its_max_age_is_asked_about_every_time() -> None:
    assert freshness({"cache-control": "max-age=60", "age": "61"}, NOW).fresh_until is None


@pytest.mark.parametrize(
    "cache_control", ["no-cache", "max-age=3600, no-cache", "max-age=0", "max-age=oops"]
)
def test_no_cache_or_no_lifetime_means_revalidating_every_time(cache_control: str) -> None:
    found = freshness({"cache-control": cache_control}, NOW)
    assert found.storable and found.fresh_until is None


@pytest.mark.parametrize("cache_control", ["no-store", "private", "Private, max-age=3600"])
def test_no_store_and_private_answers_are_never_reused(cache_control: str) -> None:
    assert not freshness({"cache-control": cache_control}, NOW).storable


def test_no_headers_mean_no_lifetime_no_heuristic_guess() -> None:
    headers = {"last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
    assert freshness(headers, NOW).fresh_until is None


def test_expires_counts_from_the_origins_date() -> None:
    headers = {
        "date": "Fri, 04 Dec 2026 11:00:00 GMT",
        "expires": "Fri, 04 Dec 2026 11:10:00 GMT",
    }
    assert freshness(headers, NOW).fresh_until == NOW + timedelta(minutes=10)


def test_max_age_wins_over_expires_and_a_bad_expires_means_no_lifetime() -> None:
    headers = {"cache-control": "max-age=5", "expires": "Fri, 04 Dec 2027 11:10:00 GMT"}
    assert freshness(headers, NOW).fresh_until == NOW + timedelta(seconds=5)
    assert freshness({"expires": "0"}, NOW).fresh_until is None


def test_directives_are_case_insensitive_and_unquoted() -> None:
    assert directives('Max-Age="30", NO-TRANSFORM') == {"max-age": "30", "no-transform": None}


def test_a_conditional_get_carries_both_validators_when_both_are_known() -> None:
    assert conditional_headers('"abc"', "Mon, 01 Jan 2024 00:00:00 GMT") == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT",
    }
    assert conditional_headers(None, None) == {}


def test_a_source_checked_for_this_request_or_still_fresh_needs_no_request() -> None:
    assert may_skip_asking(None, "r1", "r1", NOW)
    assert not may_skip_asking(None, "r0", "r1", NOW)
    assert may_skip_asking(NOW + timedelta(seconds=1), "r0", "r1", NOW)
    assert not may_skip_asking(NOW, "r0", "r1", NOW)


def test_reuse_is_per_tenant_unless_global_or_without_tenants() -> None:
    assert scope_of("acme", "tenant") != scope_of("globex", "tenant")
    assert scope_of("acme", "global") == scope_of("globex", "global") == SHARED_SCOPE
    assert scope_of(None, "tenant") == SHARED_SCOPE


def test_one_url_in_two_scopes_is_two_sources_and_two_outputs() -> None:
    url = "https://shop.test/a.jpg"
    assert source_id("tenant:a", url) != source_id("tenant:b", url)
    fingerprint = output_fingerprint(50)
    assert output_id("tenant:a", "00" * 32, fingerprint) != output_id(
        "tenant:b", "00" * 32, fingerprint
    )


def test_another_quality_gives_another_output_for_the_same_bytes() -> None:
    assert output_id("*", "ab" * 32, output_fingerprint(50)) != output_id(
        "*", "ab" * 32, output_fingerprint(60)
    )


def test_a_shared_key_is_made_of_the_output_id_only() -> None:
    made = output_id("*", "ab" * 32, output_fingerprint(50))
    assert shared_key(made) == f"images/shared/{made[:2]}/{made}.jpg"


def test_an_answer_that_changes_only_its_date_and_age_is_not_a_change() -> None:
    stored = {"etag": '"v1"', "date": "Fri, 04 Dec 2026 11:00:00 GMT", "age": "3"}
    received = {"etag": '"v1"', "date": "Fri, 04 Dec 2026 12:00:00 GMT"}
    assert not answer_changed(stored, received)


@pytest.mark.parametrize(
    "received",
    [
        {"etag": '"v2"'},
        {"etag": '"v1"', "cache-control": "max-age=60"},
        {"etag": '"v1"', "last-modified": "Fri, 04 Dec 2026 10:00:00 GMT"},
    ],
)
def test_an_answer_with_other_validators_or_lifetime_is_a_change(received: dict[str, str]) -> None:
    assert answer_changed({"etag": '"v1"', "date": "Fri, 04 Dec 2026 11:00:00 GMT"}, received)

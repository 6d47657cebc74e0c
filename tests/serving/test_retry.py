"""Tests of tfrec_llm.serving.retry: only UNAVAILABLE is retried, with doubling waits, no clock."""

from __future__ import annotations

import pytest

from tfrec_llm.serving.errors import ServerUnavailableError, error_for_code
from tfrec_llm.serving.retry import call_with_retry


def _failing(codes, result="ok"):
    """An attempt function that raises the given codes in turn, then returns ``result``."""
    calls = []

    def attempt(number):
        calls.append(number)
        if len(calls) <= len(codes):
            code = codes[len(calls) - 1]
            raise error_for_code(code, f"{code} on attempt {number}", attempts=number)
        return result

    return attempt, calls


def test_unavailable_is_retried_with_doubling_waits_until_success():
    attempt, calls = _failing(["UNAVAILABLE", "UNAVAILABLE"])
    sleeps = []
    assert call_with_retry(attempt, max_retries=3, backoff_s=0.1, sleep=sleeps.append) == "ok"
    assert calls == [1, 2, 3]
    assert sleeps == pytest.approx([0.1, 0.2])  # 0.1 * 2**0, 0.1 * 2**1


def test_unavailable_after_the_last_retry_raises_the_last_error():
    attempt, calls = _failing(["UNAVAILABLE"] * 10)
    sleeps = []
    with pytest.raises(ServerUnavailableError, match="UNAVAILABLE on attempt 4") as info:
        call_with_retry(attempt, max_retries=3, backoff_s=0.5, sleep=sleeps.append)
    assert calls == [1, 2, 3, 4] and info.value.attempts == 4
    assert sleeps == pytest.approx([0.5, 1.0, 2.0])


@pytest.mark.parametrize("code", ["INVALID_ARGUMENT", "NOT_FOUND", "DEADLINE_EXCEEDED", "INTERNAL"])
def test_other_codes_are_raised_at_once(code):
    attempt, calls = _failing([code])
    sleeps = []
    with pytest.raises(Exception, match=f"{code} on attempt 1") as info:
        call_with_retry(attempt, max_retries=3, backoff_s=0.1, sleep=sleeps.append)
    assert info.value.code == code and calls == [1] and sleeps == []


def test_zero_retries_sends_once():
    attempt, calls = _failing(["UNAVAILABLE"])
    with pytest.raises(ServerUnavailableError):
        call_with_retry(attempt, max_retries=0, backoff_s=0.1, sleep=lambda s: None)
    assert calls == [1]

"""Flow authors' regexes cannot stall a worker on a contact's text."""

from flows.engine import patterns


def test_catastrophic_pattern_times_out_as_no_match():
    # Without the time limit this backtracks 2**40 times: the test would not finish.
    assert patterns.fullmatch(r"(a+)+$", "a" * 40 + "!") is False


def test_ordinary_patterns_match():
    assert patterns.fullmatch(r"[A-Z]{3}-\d{4}", "ABC-1234")
    assert not patterns.fullmatch(r"[A-Z]{3}-\d{4}", "ABC-1234x")
    assert patterns.search(r"\bpix\b", "pago com pix hoje")

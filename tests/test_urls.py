"""Canonical URLs: one spelling per article (tests/fixtures/urls/cases.toml)."""

from __future__ import annotations

from pathlib import Path
import random
import re
import tomllib

import pytest

from crawler.urls import InvalidURL, canonicalize, try_canonicalize

CASES = tomllib.loads(
    (Path(__file__).parent / "fixtures" / "urls" / "cases.toml").read_text("utf-8")
)["case"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_canonicalize(case: dict) -> None:
    if "error" in case:
        with pytest.raises(InvalidURL, match=re.escape(case["error"])) as raised:
            canonicalize(case["url"], case.get("base"))
        assert isinstance(raised.value, ValueError)
        assert try_canonicalize(case["url"], case.get("base")) is None
    else:
        assert canonicalize(case["url"], case.get("base")) == case["expected"]


@pytest.mark.parametrize("case", [c for c in CASES if "expected" in c],
                         ids=[c["name"] for c in CASES if "expected" in c])
def test_canonical_form_is_a_fixed_point(case: dict) -> None:
    once = canonicalize(case["url"], case.get("base"))
    assert canonicalize(once) == once
    assert canonicalize(once, "https://unrelated.example/") == once


def test_error_message_names_the_url() -> None:
    with pytest.raises(InvalidURL, match="javascript:void"):
        canonicalize("javascript:void(0)")


def test_arbitrary_strings_are_canonical_or_invalid() -> None:
    """Fuzz (fixed seed): never another exception, and every result is a fixed point."""
    rng = random.Random(5)
    alphabet = "hts:/.%?&=#@:80abcé\x00 \\-_~[]"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        if rng.random() < 0.7:
            text = "https://" + text
        try:
            canonical = canonicalize(text, rng.choice([None, "https://b.example/x/"]))
        except InvalidURL:
            continue
        assert canonicalize(canonical) == canonical
        assert not any(char in canonical for char in " \x00\n")

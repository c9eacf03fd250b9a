"""Canonical URLs: one spelling per article (tests/fixtures/urls/cases.toml)."""

from __future__ import annotations

from pathlib import Path
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

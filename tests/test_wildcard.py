"""templates.deployer.wildcard_match answers as fnmatch.fnmatchcase does, for every pattern."""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from templates.deployer import wildcard_match

TEXT = st.text(alphabet="ab:-/*\n", max_size=10)
PATTERN = st.text(alphabet="ab:-/*?[]!\n", max_size=8)


@given(TEXT, PATTERN)
def test_wildcard_match_is_fnmatchcase(text: str, pattern: str) -> None:
    assert wildcard_match(text, pattern) == fnmatch.fnmatchcase(text, pattern)


def test_wildcard_match_on_the_deployers_patterns() -> None:
    covered = "arn:${AWS::Partition}:lambda:*:${AWS::AccountId}:function:shop-prod-*:*"
    assert wildcard_match(covered, "arn:${AWS::Partition}:lambda:*:${AWS::AccountId}:function:shop-prod-*")
    assert not wildcard_match("shop-prodx", "shop-prod-*")
    assert wildcard_match("shop-prod-", "shop-prod-*")
    assert not wildcard_match("ab", "a*b*b")  # the parts may not overlap
    assert wildcard_match("abb", "a*b*b")

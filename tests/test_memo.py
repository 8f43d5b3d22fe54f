"""fairlib._memo.Memo: the in-process memory that lets a sweep's runs share an expensive step."""

import pytest

from fairlib._memo import Memo


def test_memo_builds_once_per_key_and_keeps_the_latest():
    calls = []
    memo = Memo(2)

    def build(x):
        calls.append(x)
        return [x]

    a = memo.get({"x": 1, "y": "a"}, lambda: build(1))
    assert memo.get({"y": "a", "x": 1}, lambda: build(1)) is a, "key order does not matter"
    memo.get({"x": 2}, lambda: build(2))
    memo.get({"x": 1, "y": "a"}, lambda: build(1))  # refreshes x=1
    memo.get({"x": 3}, lambda: build(3))  # drops x=2, the least recently used
    memo.get({"x": 2}, lambda: build(2))
    assert calls == [1, 2, 3, 2] and len(memo) == 2
    memo.clear()
    assert len(memo) == 0
    with pytest.raises(ValueError, match="maxsize: expected a positive integer"):
        Memo(0)

"""The shipped public prompt sets (MedSafetyBench, MedQuAD): splits, harm levels, written responses."""

from __future__ import annotations

import hashlib

import pytest

from carealign.data import load_prompts, public_split
from carealign.errors import DataError


@pytest.mark.parametrize(
    ("name", "level", "n_train", "n_test"), [("medsafetybench", 3, 751, 149), ("medquad", 0, 2383, 617)]
)
def test_splits_are_disjoint_fixed_and_cover_the_set(name: str, level: int, n_train: int, n_test: int) -> None:
    train, test = load_prompts(name, "train"), load_prompts(name, "test")
    assert (len(train), len(test)) == (n_train, n_test)
    assert not {r.id for r in train} & {r.id for r in test}
    assert {r.harm_level for r in train + test} == {level}
    assert {r.split for r in train} == {"train"} and {r.split for r in test} == {"test"}
    # the rule, computed by hand for every held-out row: sha256(id)[:8] as an integer, divisible by 5
    assert all(int(hashlib.sha256(r.id.encode()).hexdigest()[:8], 16) % 5 == 0 for r in test)
    assert all(int(hashlib.sha256(r.id.encode()).hexdigest()[:8], 16) % 5 != 0 for r in train)
    assert len(load_prompts(name, "all")) == n_train + n_test


def test_the_split_depends_on_the_id_only() -> None:
    assert public_split("msb-train-gpt4-1-0") == public_split("msb-train-gpt4-1-0")
    ids = [f"x-{i}" for i in range(2000)]
    share = sum(public_split(i) == "test" for i in ids) / len(ids)
    assert 0.17 < share < 0.23


def test_written_responses_travel_with_the_prompts() -> None:
    harmful = load_prompts("medsafetybench", "train", limit=20)
    assert all(r.reference_response and r.reference_response.strip() for r in harmful)
    benign = load_prompts("medquad", "test")
    assert sum(r.reference_response is None for r in benign) <= 2  # two MedQuAD rows have no answer


def test_unknown_split_is_an_error_naming_the_splits() -> None:
    with pytest.raises(DataError, match="train, test"):
        load_prompts("medquad", "validation")

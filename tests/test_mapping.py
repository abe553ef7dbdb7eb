"""Tests for vrbench.mapping: hand-computed examples for every function, plus a property test of the greedy."""

from __future__ import annotations

import random

import pytest
import torch

from vrbench import mapping
from vrbench.errors import ConfigError
from vrbench.mapping import MappingInputError


def _logits_predicting(preds: list[int], num_source: int) -> torch.Tensor:
    """Logits whose argmax row i is preds[i]."""
    z = torch.zeros(len(preds), num_source)
    z[torch.arange(len(preds)), torch.tensor(preds)] = 5.0
    return z


def _reference_greedy(freq: torch.Tensor) -> list[int]:
    """The docs/methods.md VR §2.3 loop, written out literally (C passes of a first-occurrence row-major argmax)."""
    n = freq.clone().to(torch.int64).tolist()
    s, c_num = len(n), len(n[0]) if n else 0
    pi = [None] * c_num
    for _ in range(c_num):
        best, bk, bc = None, -1, -1
        for k in range(s):
            for c in range(c_num):
                if best is None or n[k][c] > best:  # strict '>' keeps the first maximum in row-major order
                    best, bk, bc = n[k][c], k, c
        pi[bc] = bk
        for c in range(c_num):
            n[bk][c] = -1
        for k in range(s):
            n[k][bc] = -1
    return pi


# ---------------------------------------------------------------------------------------------- frequency_matrix


def test_frequency_matrix_counts_and_absent_class():
    # preds: 2, 0, 2, 1, 2 ; labels: 0, 0, 1, 1, 0 ; class 2 never appears -> zero column
    logits = _logits_predicting([2, 0, 2, 1, 2], num_source=4)
    labels = torch.tensor([0, 0, 1, 1, 0])
    n = mapping.frequency_matrix(logits, labels, num_classes=3)
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [2, 1, 0], [0, 0, 0]])
    assert n.dtype == torch.int64
    assert torch.equal(n, expected)


def test_frequency_matrix_argmax_tie_takes_first_index():
    logits = torch.tensor([[0.0, 3.0, 3.0, 1.0]])
    n = mapping.frequency_matrix(logits, torch.tensor([1]), num_classes=2)
    assert torch.equal(n, torch.tensor([[0, 0], [0, 1], [0, 0], [0, 0]]))


@pytest.mark.parametrize("bad", [-1, 3])
def test_frequency_matrix_rejects_out_of_range_labels(bad):
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        mapping.frequency_matrix(torch.zeros(2, 4), torch.tensor([0, bad]), num_classes=3)


def test_frequency_matrix_rejects_bad_shapes_and_types():
    with pytest.raises(ValueError, match="entries"):
        mapping.frequency_matrix(torch.zeros(2, 4), torch.tensor([0, 1, 1]), num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        mapping.frequency_matrix(torch.zeros(2, 4), torch.tensor([0.0, 1.0]), num_classes=3)
    with pytest.raises(ValueError, match="2-D"):
        mapping.frequency_matrix(torch.zeros(4), torch.tensor([0]), num_classes=3)
    with pytest.raises(ValueError, match="NaN"):
        mapping.frequency_matrix(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]), num_classes=1)
    with pytest.raises(ValueError, match="num_classes"):
        mapping.frequency_matrix(torch.zeros(1, 4), torch.tensor([0]), num_classes=0)


def test_errors_are_both_config_and_value_errors():
    with pytest.raises(ConfigError):
        mapping.greedy_one_to_one(torch.zeros(2, 3, dtype=torch.int64))
    assert issubclass(MappingInputError, ValueError)


# ---------------------------------------------------------------------------------------------- greedy_one_to_one


def test_greedy_simple_and_input_untouched():
    freq = torch.tensor([[5, 1, 0], [4, 9, 0], [0, 0, 3], [7, 0, 0]])
    before = freq.clone()
    # 9 at (1,1); then 7 at (3,0); then 3 at (2,2)
    assert mapping.greedy_one_to_one(freq).tolist() == [3, 1, 2]
    assert torch.equal(freq, before)


def test_greedy_ties_smallest_source_then_smallest_target():
    # all 4s: first row-major max is (0,0); then (1,1) is the first 4 among free rows/cols
    freq = torch.tensor([[4, 4], [4, 4], [4, 4]])
    assert mapping.greedy_one_to_one(freq).tolist() == [0, 1]
    # tie between (2,0) and (1,1): source 1 wins (smaller k) -> target 1 gets source 1, then target 0 takes (2,0)
    freq = torch.tensor([[0, 0], [0, 6], [6, 0]])
    assert mapping.greedy_one_to_one(freq).tolist() == [2, 1]
    # same source wanted by two targets at an equal count: smallest target wins, the other falls to zeros
    freq = torch.tensor([[0, 0], [3, 3], [0, 0]])
    assert mapping.greedy_one_to_one(freq).tolist() == [1, 0]


def test_greedy_exhausted_counts_fill_smallest_unused_sources_in_order():
    # only target 2 has a count (source 3). Targets 0, 1, 3 then get sources 0, 1, 2 in that order.
    freq = torch.zeros(6, 4, dtype=torch.int64)
    freq[3, 2] = 8
    assert mapping.greedy_one_to_one(freq).tolist() == [0, 1, 3, 2]
    # source 0 used by target 3; remaining targets 0, 1, 2 get sources 1, 2, 3
    freq = torch.zeros(5, 4, dtype=torch.int64)
    freq[0, 3] = 2
    assert mapping.greedy_one_to_one(freq).tolist() == [1, 2, 3, 0]


def test_greedy_all_zero_matrix_is_identity_prefix():
    assert mapping.greedy_one_to_one(torch.zeros(7, 4, dtype=torch.int64)).tolist() == [0, 1, 2, 3]


def test_greedy_float_counts():
    freq = torch.tensor([[0.2, 0.7], [0.7, 0.1], [0.0, 0.0]])
    # two 0.7s: (0,1) comes first row-major; then (1,0)
    assert mapping.greedy_one_to_one(freq).tolist() == [1, 0]


def test_greedy_rejects_more_targets_than_sources():
    with pytest.raises(ValueError, match="num_classes <= num_source"):
        mapping.greedy_one_to_one(torch.zeros(2, 3, dtype=torch.int64))


def test_greedy_rejects_negative_and_non_2d():
    with pytest.raises(ValueError, match="non-negative"):
        mapping.greedy_one_to_one(torch.tensor([[1, -1], [0, 0]]))
    with pytest.raises(ValueError, match="2-D"):
        mapping.greedy_one_to_one(torch.zeros(3, dtype=torch.int64))


def test_greedy_matches_reference_loop_on_random_tie_heavy_matrices():
    rng = random.Random(1234)
    for _ in range(200):
        c_num = rng.randint(1, 6)
        s = rng.randint(c_num, 9)
        high = rng.choice([1, 2, 3, 10])  # small ranges -> many ties and many zeros
        freq = torch.tensor([[rng.randint(0, high) for _ in range(c_num)] for _ in range(s)])
        got = mapping.greedy_one_to_one(freq).tolist()
        assert got == _reference_greedy(freq), freq
        assert len(set(got)) == c_num


# ---------------------------------------------------------------------------------------------- rlm / flm / ilm


def test_rlm_reproducible_distinct_and_matches_randperm():
    a = mapping.rlm(1000, 10, generator=torch.Generator().manual_seed(3))
    b = mapping.rlm(1000, 10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.dtype == torch.int64 and a.shape == (10,)
    assert len(set(a.tolist())) == 10 and 0 <= int(a.min()) and int(a.max()) < 1000
    assert torch.equal(a, torch.randperm(1000, generator=torch.Generator().manual_seed(3))[:10])
    c = mapping.rlm(1000, 10, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a, c)
    full = mapping.rlm(5, 5, generator=torch.Generator().manual_seed(0))
    assert sorted(full.tolist()) == [0, 1, 2, 3, 4]


def test_rlm_without_generator_uses_global_rng():
    state = torch.get_rng_state()
    try:
        torch.manual_seed(7)
        got = mapping.rlm(1000, 37)
        torch.manual_seed(7)
        assert torch.equal(got, torch.randperm(1000)[:37])
    finally:
        torch.set_rng_state(state)


def test_rlm_rejects_too_many_targets():
    with pytest.raises(ValueError, match="num_target <= num_source"):
        mapping.rlm(5, 6)


def test_flm_and_ilm_are_greedy_of_frequency_matrix():
    # preds/labels: class 0 -> sources 2,2,1 ; class 1 -> 2,3 ; class 2 absent
    logits = _logits_predicting([2, 2, 1, 2, 3], num_source=5)
    labels = torch.tensor([0, 0, 0, 1, 1])
    # N: row1=[1,0,0], row2=[2,1,0], row3=[0,1,0]. Greedy: (2,0)=2 ; then (3,1)=1 ; target 2 -> smallest free 0
    assert mapping.flm(logits, labels, 3).tolist() == [2, 3, 0]
    assert mapping.ilm(logits, labels, 3).tolist() == [2, 3, 0]


# ---------------------------------------------------------------------------------------------- blm


def test_blm_hand_values_lambda_one():
    # source 0: predicted once (class 0); source 1: 100 times, all class 1; source 2: 2x class 0, 2x class 1
    preds = [0] + [1] * 100 + [2, 2, 2, 2]
    labels = [0] + [1] * 100 + [0, 0, 1, 1]
    omega = mapping.blm(_logits_predicting(preds, 4), torch.tensor(labels), num_classes=2, lap=1.0)
    # M: row0 = [1/2, 0], row1 = [0, 100/101], row2 = [2/5, 2/5], row3 = 0
    col0 = 0.5 + 0.4
    col1 = 100 / 101 + 0.4
    expected = torch.tensor([[0.5 / col0, 0.0], [0.0, (100 / 101) / col1], [0.4 / col0, 0.4 / col1], [0.0, 0.0]])
    assert omega.dtype == torch.float32 and omega.shape == (4, 2)
    torch.testing.assert_close(omega, expected)
    torch.testing.assert_close(omega.sum(0), torch.ones(2))


def test_blm_single_hit_is_half_before_normalisation():
    # one sample per class, each on its own source: M = 1/2 in each, columns normalise to exactly 1
    omega = mapping.blm(_logits_predicting([1, 0], 3), torch.tensor([0, 1]), num_classes=2)
    assert torch.equal(omega, torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]))
    # lap scales the denominator: two classes sharing source 0 once each -> M = 1/(2+3) each, normalised to 1
    omega = mapping.blm(_logits_predicting([0, 0], 2), torch.tensor([0, 1]), num_classes=2, lap=3.0)
    assert torch.equal(omega, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))


def test_blm_lap_zero_never_predicted_sources_get_zero():
    omega = mapping.blm(_logits_predicting([0, 0, 2], 3), torch.tensor([0, 1, 1]), num_classes=2, lap=0.0)
    # M: row0 = [1/2, 1/2], row1 = 0 (0/0 -> 0), row2 = [0, 1]; col1 sum 1.5
    expected = torch.tensor([[1.0, 0.5 / 1.5], [0.0, 0.0], [0.0, 1.0 / 1.5]])
    torch.testing.assert_close(omega, expected)
    assert torch.isfinite(omega).all()


def test_blm_absent_class_raises_instead_of_nan():
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no samples"):
        mapping.blm(_logits_predicting([0, 1], 3), torch.tensor([0, 2]), num_classes=3)
    with pytest.raises(ValueError, match="lap"):
        mapping.blm(_logits_predicting([0], 3), torch.tensor([0]), num_classes=1, lap=-1.0)


# ---------------------------------------------------------------------------------------------- blmpp


def _three_sample_example():
    # logits = log(p) so softmax returns p exactly (rows sum to 1)
    p = torch.tensor(
        [
            [0.6, 0.3, 0.1, 0.0],
            [0.1, 0.2, 0.7, 0.0],
            [0.5, 0.1, 0.0, 0.4],
        ]
    )
    logits = torch.log(p.clamp_min(1e-30))
    labels = torch.tensor([0, 1, 0])
    return logits, labels


def test_blmpp_k1_hand_values():
    logits, labels = _three_sample_example()
    omega = mapping.blmpp(logits, labels, num_classes=2, k=1)
    # kept: s0 -> {0: .6}, s1 -> {2: .7}, s2 -> {0: .5}
    # N+: row0 = [1.1, 0], row2 = [0, .7]; M: row0 = [1.1/2.1, 0], row2 = [0, .7/1.7]; each column has one entry
    expected = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(omega, expected)


def test_blmpp_k2_hand_values():
    logits, labels = _three_sample_example()
    omega = mapping.blmpp(logits, labels, num_classes=2, k=2)
    # kept: s0 -> {0: .6, 1: .3}, s1 -> {2: .7, 1: .2}, s2 -> {0: .5, 3: .4}
    # N+ rows: 0: [1.1, 0], 1: [.3, .2], 2: [0, .7], 3: [.4, 0]
    m = torch.tensor(
        [
            [1.1 / 2.1, 0.0],
            [0.3 / 1.5, 0.2 / 1.5],
            [0.0, 0.7 / 1.7],
            [0.4 / 1.4, 0.0],
        ],
        dtype=torch.float64,
    )
    expected = (m / m.sum(0, keepdim=True)).float()
    torch.testing.assert_close(omega, expected)
    torch.testing.assert_close(omega.sum(0), torch.ones(2))
    assert omega.dtype == torch.float32


def test_blmpp_rejects_bad_k_and_absent_class():
    logits, labels = _three_sample_example()
    with pytest.raises(ValueError, match="k must be >= 1"):
        mapping.blmpp(logits, labels, num_classes=2, k=0)
    with pytest.raises(ValueError, match="k must be <="):
        mapping.blmpp(logits, labels, num_classes=2, k=5)
    with pytest.raises(ValueError, match=r"\[2\] have no samples"):
        mapping.blmpp(logits, labels, num_classes=3, k=1)


@pytest.mark.parametrize(
    ("num_classes", "k"),
    [(10, 1), (100, 15), (43, 6), (102, 15), (47, 7), (101, 15), (37, 5), (196, 29), (397, 59), (2, 1)],
)
def test_blmpp_k_table(num_classes, k):
    assert mapping.blmpp_k(num_classes) == k


def test_blmpp_k_custom_ratio_and_rejections():
    assert mapping.blmpp_k(10, topk_ratio=0.5) == 5
    with pytest.raises(ValueError, match="topk_ratio"):
        mapping.blmpp_k(10, topk_ratio=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        mapping.blmpp_k(0)


# ---------------------------------------------------------------------------------------------- apply_mapping


def test_apply_mapping_index_vector():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]])
    out = mapping.apply_mapping(logits, torch.tensor([3, 0]))
    assert torch.equal(out, torch.tensor([[3.0, 0.0], [13.0, 10.0]]))


def test_apply_mapping_matrix_and_gradient():
    logits = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    omega = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 2.0]])
    out = mapping.apply_mapping(logits, omega)
    assert torch.equal(out, torch.tensor([[2.0, 6.0]]))
    out.sum().backward()
    assert torch.equal(logits.grad, torch.tensor([[1.0, 0.5, 2.0]]))


def test_apply_mapping_rejects_bad_mappings():
    logits = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        mapping.apply_mapping(logits, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        mapping.apply_mapping(logits, torch.tensor([4]))
    with pytest.raises(ValueError, match="rows"):
        mapping.apply_mapping(logits, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="integer"):
        mapping.apply_mapping(logits, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="floating"):
        mapping.apply_mapping(logits, torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="1-D"):
        mapping.apply_mapping(logits, torch.zeros(4, 2, 1))

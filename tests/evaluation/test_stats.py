import numpy as np
import pytest

from a2i.evaluation import stats


def test_bootstrap_counts_are_resamples_of_n():
    counts = stats.bootstrap_counts(np.zeros(7, int), 50, np.random.default_rng(0))
    assert counts.shape == (50, 7)
    assert (counts.sum(axis=1) == 7).all() and (counts >= 0).all()
    assert len({tuple(row) for row in counts}) > 40  # resamples differ


def test_bootstrap_resamples_within_each_instrument():
    # the conditions are drawn per instrument: every resample keeps 5 of each, as the design does
    labels = np.repeat([3, 0, 7], 5)[np.random.default_rng(1).permutation(15)]
    counts = stats.bootstrap_counts(labels, 200, np.random.default_rng(0))
    for label in (0, 3, 7):
        assert (counts[:, labels == label].sum(axis=1) == 5).all()
    assert len({tuple(row) for row in counts}) > 150
    # so the interval of a mean over classes that differ only measures the spread within them
    hits = (labels == 0).astype(float)  # one class always right, the others never
    assert stats.percentile_interval(counts @ hits / 15) == pytest.approx((1 / 3, 1 / 3))


def test_bootstrap_needs_a_replicate():
    with pytest.raises(ValueError, match="evaluate.bootstrap"):
        stats.bootstrap_counts(np.zeros(5, int), 0, np.random.default_rng(0))


def test_percentile_interval():
    assert stats.percentile_interval(np.arange(1001)) == pytest.approx((25.0, 975.0))


def test_mean_sd_over_seeds():
    assert stats.mean_sd([0.5, 0.7]) == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert stats.mean_sd([0.5]) == (0.5, None)


def test_confusion_rows_are_the_actual_class():
    counts = stats.confusion_counts(np.array([0, 0, 0, 2]), np.array([0, 1, 1, 2]), 3)
    assert counts.tolist() == [[1, 2, 0], [0, 0, 0], [0, 0, 1]]
    proportions = stats.row_proportions(counts)
    assert proportions[0] == pytest.approx([1 / 3, 2 / 3, 0])
    assert np.isnan(proportions[1]).all()
    assert proportions[2] == pytest.approx([0, 0, 1])


IMPOSSIBLE = [("adherence", 1.2, "adherence=1.2: a proportion outside [0, 1]"),
              ("acc_oboe", -0.1, "acc_oboe=-0.1: a proportion outside [0, 1]"),
              ("fid_test", float("nan"), "fid_test=nan: not finite"),
              ("fid_test_sd", float("inf"), "fid_test_sd=inf: not finite"),
              ("fid_test", -2.0, "fid_test=-2.0: negative"),
              ("adherence_ci_low", 0.95, "adherence_ci_low=0.95 > adherence_ci_high=0.9")]


@pytest.mark.parametrize("key, value, why", IMPOSSIBLE)
def test_impossible_metrics_are_one_line_errors(key, value, why):
    possible = {"variant": "text-2s", "epoch": 2, "adherence": 0.9, "adherence_sd": None, "adherence_ci_low": 0.85,
                "adherence_ci_high": 0.9, "acc_oboe": 0.0, "acc_flute": None, "fid_test": 3.0, "fid_test_sd": 0.0,
                "fid_test_ci_low": 3.5, "fid_test_ci_high": 4.0}  # a Frechet interval may exclude its estimate
    stats.check_metrics(possible, "m.json")
    with pytest.raises(ValueError) as error:
        stats.check_metrics({**possible, key: value}, "m.json")
    assert str(error.value) == f"m.json: impossible metrics ({why}): its samples or their evaluation are broken"

"""Which differences are real: intervals, paired comparisons, aggregates and ranks over seeds and datasets.

Pure numpy and ``scipy.special`` (the report imports these on every run; ``scipy.stats`` alone costs 1-2 s to
import, so it is imported only where a function needs it: ``vrbench compare``'s Wilcoxon test).
See docs/statistics.md for what each number means and when it is valid.

- :mod:`.intervals`: the t-interval of a mean over seeds.
- :mod:`.paired`: paired differences over shared seeds, the leaderboard's "not significantly worse" marks, Holm.
- :mod:`.bootstrap`: stratified bootstrap (resampling seeds within datasets); mean, median, IQM across datasets.
- :mod:`.ranks`: average ranks, the Friedman test, the Nemenyi critical difference and its cliques.
- :mod:`.compare`: everything ``vrbench compare A B`` reports, from two methods' scores.
"""

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
BOOTSTRAP_SEED = 0  # fixed, so the same scores always give the same intervals; printed beside them
BOOTSTRAP_REPS = 1000  # rliable defaults to 50,000; 1,000 keeps the report within its time budget (docs/statistics.md)

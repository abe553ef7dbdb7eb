"""vrbench-example-plugin: the metadata vrbench reads without importing torch (see docs/plugins.md).

Each object is named by an entry point in pyproject.toml. Its ``implementation`` is imported only in a job's
worker. Bump an entry's ``version`` whenever its behaviour changes: old results are then never reused.
"""

from vrbench.api import InputInfo, MappingInfo

HLM = MappingInfo(
    "hlm", "vrbench_example_plugin.methods:HungarianMapping", version=1, one_to_one=True,
    params={"mapping_interval": 1, "mapping_mode": "faithful"},
    description="one-to-one mapping maximising the total prediction count (Hungarian algorithm), re-estimated "
                "every mapping_interval epochs like ILM",
    paper_name="HLM (example plugin)")

BOUNDED_FULL = InputInfo(
    "bounded_full", "vrbench_example_plugin.methods:build_bounded_full", version=1,
    params={"image_size": None, "canvas": None, "epsilon": 0.25},
    description="image resized to the whole canvas plus a learnable pattern bounded by epsilon*tanh, in pixel "
                "space, then normalised")

"""Whole datasets: top examples, a channel atlas and faithfulness benchmarks, here or on Dask workers.

The engine (`engine`) runs a dataset's batches as tasks: in this process by default, on a local
Dask cluster with `workers=N`, or on any cluster through a `distributed.Client`. Dask is an
optional extra (`pip install "convviz_widgets[dask]"`); nothing here imports it until asked to.
"""

from .atlas import Atlas, atlas, default_layers
from .engine import EXTRA, RunStats, dask_client
from .evaluate import EvaluationTable, evaluate
from .examples import dataset_examples, top_examples
from .progress import progress_bar

__all__ = ["EXTRA", "Atlas", "EvaluationTable", "RunStats", "atlas", "dask_client", "dataset_examples",
           "default_layers", "evaluate", "progress_bar", "top_examples"]

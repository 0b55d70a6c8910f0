"""Alias of ``glue_eval.glue_metric`` (the GLUE track moved to the top-level package ``glue_eval``)."""

import sys

import glue_eval.glue_metric

sys.modules[__name__] = glue_eval.glue_metric

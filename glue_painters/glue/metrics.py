"""Alias of ``glue_eval.metrics`` (the GLUE track moved to the top-level package ``glue_eval``)."""

import sys

import glue_eval.metrics

sys.modules[__name__] = glue_eval.metrics

"""Alias of ``glue_eval.sweep`` (the GLUE track moved to the top-level package ``glue_eval``)."""

import sys

import glue_eval.sweep

sys.modules[__name__] = glue_eval.sweep

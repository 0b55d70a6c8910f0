"""Alias of ``glue_eval.modeling`` (the GLUE track moved to the top-level package ``glue_eval``)."""

import sys

import glue_eval.modeling

sys.modules[__name__] = glue_eval.modeling

"""Alias of ``glue_eval.probe`` (the GLUE track moved to the top-level package ``glue_eval``)."""

import sys

import glue_eval.probe

sys.modules[__name__] = glue_eval.probe

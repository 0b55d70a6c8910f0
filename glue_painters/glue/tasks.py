"""Alias of ``glue_eval.tasks`` (the GLUE track moved to the top-level package ``glue_eval``)."""

import sys

import glue_eval.tasks

sys.modules[__name__] = glue_eval.tasks

"""One module per ``spikesweep`` subcommand.

Each module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Imports of heavy libraries (torch, ray, mlflow) stay inside ``run`` so that
``spikesweep --help`` and argument errors are instant.
"""

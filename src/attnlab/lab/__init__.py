"""The lab: the RNN with backpropagation through time by hand (:mod:`attnlab.lab.rnn`) and the
measured experiments behind the theory, one module per ``attnlab lab NAME`` command.

Each experiment module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, writes
a PNG plot and a JSON file of its numbers into ``--out``, and has ``TINY_ARGS`` for smoke tests.
"""

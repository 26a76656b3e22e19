"""The lab: the RNN with backpropagation through time by hand (:mod:`attnlab.lab.rnn`) and the
measured experiments behind the theory, one module per ``attnlab lab NAME`` command.

Each experiment module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, writes
a PNG plot and a JSON file of its numbers into ``--out``, and has ``TINY_ARGS`` for smoke tests.
``attnlab lab report`` runs every other experiment of :data:`EXPERIMENTS`.
"""

from attnlab.registry import Registry

EXPERIMENTS = Registry("experiment", "attnlab.lab", {
    "graph": "draw an RNN unrolled over T steps with the BPTT gradient paths",
    "vanishing": "vanishing/exploding gradients: influence of x_1 on y_T vs T",
    "complexity": "RNN vs self-attention: FLOPs, time, sequential steps, memory vs T",
    "lowrank": "SVD and Linformer attention: error vs k, time vs n",
    "scaling": "mean and variance of q.k vs d; softmax entropy with and without the 1/sqrt(d) scale",
    "generation": "time per generated token with and without the KV cache as the sequence grows",
    "report": "run every experiment and collect the results into one HTML report",
})

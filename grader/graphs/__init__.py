"""The judge measures every trained model itself: ONNX graphs of the model, checked and run by onnxruntime.

    policy.py     what a graph may contain (per assignment: operators, parameters, input and output shapes)
    inspect.py    validation of untrusted graph bytes against a policy (runs inside the runner)
    runner.py     a separate, resource-limited process that parses, validates and runs graphs
    reference.py  the reference model's graph, exported once from trusted code, with a submission's weights

A graph comes either from the reference model (the common case: the student's weights fit it and their model
computes what it computes) or from the contestant, which exports the student's own model with the submitted
weights. Either way the judge feeds it data the contestant never sees, and computes the score itself.
"""

from grader.graphs.policy import GraphPolicy, GraphRefused
from grader.graphs.runner import GraphRunner, close_runner, runner

__all__ = ["GraphPolicy", "GraphRefused", "GraphRunner", "close_runner", "runner"]

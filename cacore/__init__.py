"""The shared core: what the sidecar, the operator, the GitOps tool and the CLI have in common.

Pure modules (no I/O, no clock): ``request``, ``response``, ``inspect``, ``renewal``,
``credentials``, ``names``. Edges: ``keys`` (randomness), ``client`` (boto3), ``files``.
"""

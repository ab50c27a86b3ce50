"""The ClientCertificate operator: kopf handlers around the shared core.

Pure modules (no Kubernetes, no clock, no boto3): ``api``, ``reasons``, ``spec``, ``policy``,
``conditions``, ``status``, ``settings``. Edges: ``kube`` (the Kubernetes API), ``issuer`` (the
CA), ``metrics``, ``reconcile`` (one pass for one object), ``handlers`` (kopf), ``main`` (CLI).
"""

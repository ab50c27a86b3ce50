"""The ClientCertificate operator: kopf handlers around the shared core.

Pure modules (no Kubernetes, no clock, no boto3, no kopf): ``api``, ``spec``, ``policy`` (the
trigger checks; when to renew and the reasons are ``cacore.renewal``'s), ``conditions``,
``status``, ``settings``. Edges: ``kube`` (the Kubernetes API), ``capool`` (calls to the CA in a
bounded thread pool), ``metrics``, ``reconcile`` (one pass for one object), ``handlers`` (kopf),
``main`` (CLI). import-linter keeps kopf and boto3 out of the pure modules.
"""

"""The ClientCertificate operator: kopf handlers around the shared core.

Pure modules (no Kubernetes, no clock, no boto3, no kopf): ``api``, ``spec``, ``policy`` (the
trigger checks; when to renew and the reasons are ``cacore.renewal``'s), ``conditions``,
``status``, ``settings``, ``peering``. The controller: ``reconcile`` (what the watches say, one
pass, one issuance), driven by ``scheduler`` (a queue of due times and a queue of issuances, each
with a fixed pool of workers), with ``pending`` (issued certificates not yet written) and
``outage`` (waiting out the API server). Edges: ``kube`` (the Kubernetes API), ``capool`` (calls
to the CA in a bounded thread pool), ``metrics``, ``health`` (watchdog and liveness),
``kopfcompat`` (kopf settings and workarounds), ``handlers`` (kopf), ``main`` (CLI).
import-linter keeps kopf and boto3 out of the pure modules.
"""

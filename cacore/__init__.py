"""The shared core: what the sidecar, the operator, the GitOps tool and the CLI have in common.

The folder is the boundary. Modules directly in ``cacore/`` are pure: plain data in, plain data
out, no network, no filesystem, no clock, no randomness, no environment, no logging set-up. Time
and random numbers are parameters (``now``, ``rand``), so every decision is a table test.

- ``request``: what to ask the CA for, validated; the Lambda event it becomes.
- ``response``: the one parser of the Lambda's answer (payload -> certificate or typed error).
- ``errors``: the one error tree (``reason``, ``retryable``).
- ``exitcodes``: the one exit-code table of every command-line tool.
- ``renewal``: when to renew (renewal time, stable jitter) and the reason vocabulary.
- ``backoff``: how long to wait after failures.
- ``config``: where the CA is and who calls it (settings, checked).
- ``credentials``: which files or Secret keys hold a credential set.
- ``keys``, ``csr``, ``certinfo``, ``names``: key types, judging CSRs (the one set of CSR
  checks), reading certificates, which names the CA keeps.
- ``kubecsr``: the Kubernetes CertificateSigningRequest vocabulary (usages, whole-day lifetimes,
  the CSR object) that the operator's signer and the sidecar's ``kubernetes`` issuer share.
- ``text``: text that came from outside, made safe for terminals and logs.

``cacore/edge/`` holds the imperative shell the tools share: ``aws`` (the one boto3 session:
profile, role, assume-role), ``client`` (the Lambda transport and the CA client), ``deadline``
(a call that may hang, with a deadline the caller keeps), ``keygen`` (making keys and signing
CSRs), ``files`` (kubelet-style atomic credential sets, bounded reads, write probes),
``process`` (who this process is), ``cli`` (how a one-shot command ends), ``jsonlog``,
``cliopts`` (argparse and environment). Pure modules never import the edge; import-linter
checks it (``pyproject.toml``, ``[tool.importlinter]``).
"""

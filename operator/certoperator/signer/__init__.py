"""The CertificateSigningRequest signer: Pods ask Kubernetes, the operator decides and the CA signs.

A LambdaCA with ``spec.signer.enabled`` serves the signer name ``clientcerts.dev/<LambdaCA name>``.
For a CSR of that name the operator approves or denies it by the ClientCertificatePolicies (deny by
default), then, once it is approved (by a policy or by hand), sends the CSR exactly as made to the
CA, once, and writes the leaf and the issuing CA into ``status.certificate``.

Pure modules (no kopf, no API, no clock; import-linter keeps them so): ``names`` (the vocabulary),
``identity`` (who asked, from what the API server recorded), ``templates``, ``policyspec`` (a
ClientCertificatePolicy as data), ``csrview`` (a CSR object as data), ``approval`` (the checks,
cert-manager's policy-chain style), ``signing`` (what the CA is asked for, and the CSR's status
writes), ``trust`` (the trust bundle objects), ``settings``. Edges: ``kubeapi`` (REST calls),
``publisher`` (the trust bundle, kept current), ``controller`` (one CSR at a time: gather,
decide, act), ``outbox`` (events, posted when the signer is idle), ``feed`` (the CSR informer and
its work queue, instead of kopf), ``handlers`` (kopf wiring, registered from
``certoperator.handlers``).
"""

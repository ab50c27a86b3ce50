"""``ca-cert``: a developer's one-shot tool: get a certificate, try a mutual-TLS handshake."""

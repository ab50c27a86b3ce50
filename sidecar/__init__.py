"""The certificate sidecar: makes its own key, gets the certificate from the CA Lambda, keeps the
credential set in a shared directory fresh and tells the application.

Pure parts: ``settings`` (parsing), ``observe`` (bytes on disk -> facts), ``decide`` (facts ->
what to do), ``metrics`` (state -> exposition text). Shell: ``loop``, ``notify``, ``health``,
``main``.
"""

"""The certificate sidecar: makes its own key, gets the certificate from the CA Lambda, keeps the
credential set in a shared directory fresh and tells the application.

Pure parts: ``settings`` (parsing), ``observe`` (bytes on disk -> facts), ``policy`` (facts ->
what to do, with ``cacore.renewal`` deciding when). Shell: ``loop`` (the clock, the CA and the
files), ``state`` (what the loop knows, rendered as metrics text), ``notify``, ``health``,
``main``.
"""

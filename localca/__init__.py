"""A local stand-in for the serverless CA's TLS Lambda, reachable by unmodified boto3.

The server speaks the real Lambda Invoke REST API on a loopback address and answers
every request exactly as the serverless CA contract describes (docs/local-ca.md). It must never
import the project's client code (cacore): it stands in for AWS, not for the client.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

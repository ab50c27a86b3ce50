"""``certs-gitops``: partner CSRs through pull requests into the serverless CA's ``certs/`` tree,
checked before merge, issued after it, and delivered from the CA's DynamoDB table."""

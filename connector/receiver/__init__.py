"""The HTTP front: the app factory, the webhook endpoint, ingest into the ledger, health and metrics."""

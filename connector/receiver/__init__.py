"""The HTTP front: the webhook endpoint, ingest into the ledger, the health and metrics endpoints."""

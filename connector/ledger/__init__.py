"""Durable store of events, deliveries and quarantined bodies (SQLAlchemy Core; SQLite or PostgreSQL)."""

from connector.ledger.schema import DeliveryStatus
from connector.ledger.store import IngestResult, IngestStatus, Ledger, RejectedBody

__all__ = ["DeliveryStatus", "IngestResult", "IngestStatus", "Ledger", "RejectedBody"]

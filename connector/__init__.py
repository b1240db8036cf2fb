"""2X post-call CRM connector: receives 2X's post-call webhooks and lands each outcome on the CRM contact."""

__version__ = "0.1.0"

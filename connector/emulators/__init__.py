"""Loopback emulators of the CRM APIs the connector's sinks call, for tests and `connector serve --sandbox`."""

"""Test helpers for sink authors: the sink contract suite and what it needs (docs/sinks.md, "Contract tests").

- ``connector.testing.harness``: ``SinkHarness``, the class a sink author implements for their CRM emulator;
- ``connector.testing.contract``: ``SinkContract``, the pytest scenarios (importing it needs pytest, a test extra);
- ``connector.testing.wsgi_faults``: lost answers and refused records in front of any WSGI emulator;
- ``connector.testing.endpoint``: a loopback endpoint for the ``http`` sink.

Nothing here is imported by the connector at run time.
"""

"""CRM sinks: the Sink protocol (base.py), the registry, and the built-in sinks."""

"""The HubSpot sink: client, errors, contacts, batch, callbacks, schema, settings and set-up."""


def __getattr__(name: str) -> object:
    """``connector.sinks.hubspot:factory`` (the entry point) without importing the sink with every submodule."""
    if name == "factory":
        from connector.sinks.hubspot.sink import factory

        return factory
    raise AttributeError(name)

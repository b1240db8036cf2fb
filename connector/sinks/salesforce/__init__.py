"""The Salesforce sink: client, errors, contacts, batch, callbacks, fields, settings and set-up."""


def __getattr__(name: str) -> object:
    """``connector.sinks.salesforce:factory`` (the entry point) without importing the sink with every submodule."""
    if name == "factory":
        from connector.sinks.salesforce.sink import factory

        return factory
    raise AttributeError(name)

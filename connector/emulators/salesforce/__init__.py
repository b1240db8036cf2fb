"""A Salesforce org emulator on loopback, for tests, benchmarks and the sandbox."""

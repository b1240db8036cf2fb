"""A HubSpot CRM emulator on loopback, for tests, benchmarks and the sandbox."""

"""Mapping engine: YAML mappings turn a normalized call event into a plan of CRM actions."""

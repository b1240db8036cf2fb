"""Operator tools: status reports, preview, serving, the sandbox, crm-setup orchestration."""

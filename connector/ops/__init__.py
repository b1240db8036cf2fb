"""Operator tools: replay, status reports, preview, start-up checks, the sandbox, crm-setup orchestration."""

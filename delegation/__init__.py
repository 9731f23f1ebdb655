"""Delegation: mandates (電子委任状) as RFC 5755 attribute certificates, scope
algebra, chain evaluation and AC status. A plain library (no web, no database)."""

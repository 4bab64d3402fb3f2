"""Security helpers: secret redaction (and, with the real-time store, ClickHouse roles and row policies)."""

from hmco.redaction import REDACTED, redact_mapping, redact_text, redact_url, register_secret

__all__ = ["REDACTED", "redact_mapping", "redact_text", "redact_url", "register_secret"]

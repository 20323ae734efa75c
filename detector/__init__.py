"""auditwatch: audit-log anomaly detection daemon."""

__version__ = "0.1.0"

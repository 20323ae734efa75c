"""Event sources: where raw message bytes come from (Kafka, files)."""

"""Behaviour data: order files in (ingest), per-customer features, the product catalog."""

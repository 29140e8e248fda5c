"""lpse_exporter: Prometheus metrics for an LPSE's SPSE server (R6–R8, R10)."""

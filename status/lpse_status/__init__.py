"""The LPSE status board: what bidders see (is SPSE up, maintenance, uptime, incidents) and what
the operations team sees (disk, RAM, bandwidth and uptime graphs), read from Prometheus."""

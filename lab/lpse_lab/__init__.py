"""The lpse-ops local lab (tests and demo only): nspawn hosts, lab CA, lab secrets."""

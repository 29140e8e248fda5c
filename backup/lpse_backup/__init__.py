"""lpse-backup: the SPSE server's backups (database, document store, configuration)."""

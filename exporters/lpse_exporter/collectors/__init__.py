"""One collector per source; each reads one consistent snapshot of its source per scrape."""

"""report stage: every artifact of the run measured by one protocol, host latency, tables, plots, HTML."""

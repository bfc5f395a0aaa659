"""What every imgpipe service runs on: the broker client, the consumer boundary, logging,
the SSRF guard, the database client, file storage, health and metrics."""

"""imgpipe status: aggregates image outcomes in MongoDB, serves status, files and output CSVs."""

"""imgpipe ingest: the HTTP gateway that validates uploads and queues their images."""

"""imgpipe notifier: signed webhooks on completion, and the seed's /webhook/ receiver."""

"""Shared contracts of the imgpipe services: events, broker topology and AMQP helpers."""

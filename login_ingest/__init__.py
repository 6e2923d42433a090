"""Ingest user-login events from SQS into Postgres, with ip and device_id masked."""

"""Local stand-ins for what AWS runs: Postgres, an SQS endpoint, and the event source mapping."""

"""Operations tooling for the dead-letter queue: read it without consuming it, redrive it."""

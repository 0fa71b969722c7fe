"""Problems and verifiers: the built-in arithmetic task and a user's own JSONL dataset."""

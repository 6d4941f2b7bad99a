"""The ground floor: the vocabulary every other package speaks (the conversation model,
ids, text rules, the envelope between channels and the gateway, the event log's entries,
errors, durations, secrets, rate limits). It imports nothing of the project."""

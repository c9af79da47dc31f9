"""What a run tells people: the notifier, the sinks (webhook, Discord), delivery from the
outbox, and the metrics read from the trainer's output."""

"""Jobs: a job's submission, its read model and state machine, the log a client reads, the
streams that follow it, the sweeper that ends what waits too long, and the replay that
rebuilds every read model from the events."""

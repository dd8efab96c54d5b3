"""Running methods for many users: the engine, its micro-batcher, the runtime's precision, the load test."""

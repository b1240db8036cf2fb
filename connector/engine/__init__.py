"""The delivery engine: the worker, the single-event and batch runners, retry, rate budget."""

"""The engine: the worker loop, the rate limiter, the retry policy, the tasks."""

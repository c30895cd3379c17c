"""A tiny app that declares a topic the orders app already publishes (test_topics.py)."""

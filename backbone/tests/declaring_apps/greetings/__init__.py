"""A tiny app that declares a topic of its own (test_topics.py installs it)."""

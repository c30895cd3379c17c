"""pytest's settings (pyproject.toml): the development settings, with a password hasher that
costs microseconds, not a quarter of a second per user the tests create. The processes a test
starts inherit DJANGO_SETTINGS_MODULE, so they run these too."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

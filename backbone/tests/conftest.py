"""Fixtures shared by the backbone's tests."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def staff_client() -> Client:
    """A Django test client logged in as a superuser: the admin's and the operators' pages."""
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client = Client()
    client.force_login(user)
    return client

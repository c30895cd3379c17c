"""The token look-up (backbone/authentication.py): DRF's answers, in one prepared statement."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from backbone.authentication import TokenAuthentication, _lookup, token_with_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def token() -> Token:
    user = get_user_model().objects.create_user("tokened", email="tokened@example.com", password="x")
    return Token.objects.create(user=user)


def test_a_key_gives_its_token_and_user_as_the_orm_loads_them(token: Token) -> None:
    with CaptureQueriesContext(connection) as captured:
        found = token_with_user(Token, token.key)
    assert len(captured.captured_queries) == 1
    assert found is not None
    loaded = Token.objects.select_related("user").get(key=token.key)
    assert (found.pk, found.created) == (loaded.pk, loaded.created)
    fields = [field.attname for field in get_user_model()._meta.concrete_fields]
    assert [getattr(found.user, name) for name in fields] == [getattr(loaded.user, name) for name in fields]
    assert not found._state.adding  # a saved row: saving it again updates, never inserts
    with CaptureQueriesContext(connection) as captured:
        assert found.user.username == "tokened"
    assert not captured.captured_queries  # the user came with the token


def test_an_unknown_key_or_an_inactive_user_is_refused_as_drf_does(token: Token) -> None:
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        TokenAuthentication().authenticate_credentials("0" * 40)
    get_user_model().objects.filter(pk=token.user_id).update(is_active=False)
    with pytest.raises(AuthenticationFailed, match="inactive"):
        TokenAuthentication().authenticate_credentials(token.key)


def test_the_api_authenticates_with_it(token: Token) -> None:
    client = APIClient()
    assert client.get("/api/orders/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/orders/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key[:-1]}x")
    answer = client.get("/api/orders/")
    assert answer.status_code == 401
    assert "Invalid token" in answer.json()["detail"]


def test_a_user_model_whose_fields_convert_values_keeps_drfs_look_up(
    token: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_user_model().objects.filter(pk=token.user_id).update(first_name="stored")
    field = get_user_model()._meta.get_field("first_name")
    monkeypatch.setattr(field, "from_db_value", lambda value, *args: value.upper(), raising=False)
    _lookup.cache_clear()
    try:
        assert not _lookup(Token).loadable
        user, _ = TokenAuthentication().authenticate_credentials(token.key)
        assert user.pk == token.user_id
        assert user.first_name == "STORED"  # converted, as the ORM loads it
    finally:
        monkeypatch.undo()
        _lookup.cache_clear()
    assert _lookup(Token).loadable

"""DRF's token authentication, its look-up one fixed statement instead of an ORM query.

Every API request authenticates, and compiling `Token.objects.select_related("user").get(key=...)`
cost more CPU than PostgreSQL's answer (about a millisecond a request). The statement is written
once per token model from the models' own fields; psycopg prepares it, and the rows become
model instances through `Model.from_db`, Django's documented hook for loading them. What is
accepted and refused is DRF's: an unknown key or an inactive user is a 401.

    REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["backbone.authentication.TokenAuthentication", ...]}
"""

from functools import cache

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, connections, router
from django.db.models import Field, ForeignKey, Model
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions

from .statements import converted_fields


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Model]:
        model = self.get_model()
        if not _lookup(model).loadable:
            return super().authenticate_credentials(key)
        token = token_with_user(model, key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user: AbstractBaseUser = token.user  # type: ignore[attr-defined]  # the token model's `user`
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token


def token_with_user(model: type[Model], key: str) -> Model | None:
    """The token with this key and its user, in one statement; None when there is none."""
    lookup = _lookup(model)
    database = router.db_for_read(model)
    with connections[database].cursor() as cursor:
        cursor.execute(lookup.sql, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(lookup.token_fields)
    token = model.from_db(database, lookup.token_fields, row[:split])
    token.user = lookup.user_model.from_db(database, lookup.user_fields, row[split:])  # type: ignore[attr-defined]
    return token


class _Lookup:
    """The statement for one token model, and the field names of its two halves."""

    def __init__(self, model: type[Model]) -> None:
        user_field = model._meta.get_field("user")
        key_field = model._meta.get_field("key")
        self.user_model: type[Model] = user_field.related_model  # type: ignore[assignment]
        user_pk = self.user_model._meta.pk
        assert isinstance(user_field, ForeignKey)
        assert isinstance(key_field, Field)
        assert user_pk is not None
        # A (custom) user or token model whose fields convert database values: DRF's ORM look-up.
        self.loadable = not converted_fields(model) and not converted_fields(self.user_model)
        self.token_fields = [field.attname for field in model._meta.concrete_fields]
        self.user_fields = [field.attname for field in self.user_model._meta.concrete_fields]
        quote = connection.ops.quote_name
        columns = [f"t.{quote(field.column)}" for field in model._meta.concrete_fields]
        columns += [f"u.{quote(field.column)}" for field in self.user_model._meta.concrete_fields]
        joined = f"u.{quote(user_pk.column)} = t.{quote(user_field.column)}"
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {quote(model._meta.db_table)} t"
            f" JOIN {quote(self.user_model._meta.db_table)} u ON {joined}"
            f" WHERE t.{quote(key_field.column)} = %s"
        )


@cache
def _lookup(model: type[Model]) -> _Lookup:
    return _Lookup(model)

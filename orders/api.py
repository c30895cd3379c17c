"""The customer-facing HTTP API of the orders context: thin views over services and selectors."""

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from backbone import prefer
from backbone.pagination import PageNumberPagination
from backbone.prefer import PREFERENCE_APPLIED
from backbone.web_lanes import Scope, header, query_has

from . import bells, selectors, services, wait_slots
from .models import FINAL_STATES, Order, OrderState, StockLevelView
from .serializers import (
    InsufficientStockSerializer,
    OrderErrorSerializer,
    OrderSerializer,
    OrderStorySerializer,
    PlaceOrderSerializer,
    ProductSerializer,
    WaitQuerySerializer,
    order_representation,
)
from .throttling import OrderPlacementThrottle

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type={"type": "string", "minLength": 1, "maxLength": 255},
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes retries safe: a request with a key this customer already used for the same body "
        "returns that order (202, header `Idempotent-Replayed: true`) instead of placing another. "
        "The same key with a different body is answered 422. At most 255 characters."
    ),
)
WAIT = OpenApiParameter(
    name="wait",
    type={"type": "number", "minimum": 0},
    location=OpenApiParameter.QUERY,
    required=False,
    description=(
        "Long-poll: answer as soon as the order is CONFIRMED or REJECTED, or after this many "
        "seconds with its current state. Capped by the server (ORDER_WAIT_MAX_SECONDS, 30 by default)."
    ),
)
LOCATION = OpenApiParameter(
    name="Location",
    type=OpenApiTypes.URI,
    location=OpenApiParameter.HEADER,
    required=True,
    response=[202],
    description="the order's URL: follow it with `?wait=N` for the outcome",
)
REPLAYED = OpenApiParameter(
    name="Idempotent-Replayed",
    type={"type": "string", "enum": ["true"]},
    location=OpenApiParameter.HEADER,
    response=[202],
    description="present when an Idempotency-Key retry returned the order placed before",
)
PREFER = OpenApiParameter(
    name="Prefer",
    type={"type": "string", "maxLength": 255},
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "`wait=N` (RFC 7240): wait up to N seconds (capped by ORDER_WAIT_MAX_SECONDS) for the outcome "
        "and answer 200 with the decided order, or 202 if it is still undecided; either way with "
        "`Preference-Applied: wait`. Other preferences are ignored."
    ),
)
APPLIED = OpenApiParameter(
    name="Preference-Applied",
    type={"type": "string", "enum": ["wait"]},
    location=OpenApiParameter.HEADER,
    response=[200, 202],
    description="present when the server waited as `Prefer: wait=N` asked",
)
RETRY_AFTER = OpenApiParameter(
    name="Retry-After",
    type=OpenApiTypes.INT,
    location=OpenApiParameter.HEADER,
    response=[429],
    description="seconds until one of your waits ends at the latest",
)
NOT_FOUND = OpenApiResponse(OrderErrorSerializer, description="no such order among those you may see")


class CatalogPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class ProductListView(ListAPIView):
    """The catalog, from Orders' local view of Stock's levels."""

    permission_classes = [AllowAny]
    serializer_class = ProductSerializer
    pagination_class = CatalogPagination

    def get_queryset(self) -> QuerySet[StockLevelView]:
        return selectors.catalog()

    @extend_schema(summary="List the products and how many are available", tags=["catalog"])
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)


class OrderListCreateView(ListAPIView):
    serializer_class = OrderSerializer

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        # Placing an order is one transaction, reads included: the token, the catalog check,
        # the stock check, the order's rows and the answer's lines. Each read on its own was
        # an autocommit transaction, four commits more per order. The order's own atomic block
        # becomes a savepoint, which a lost race on an Idempotency-Key rolls back alone.
        with transaction.atomic():
            return super().dispatch(request, *args, **kwargs)

    def get_throttles(self) -> list[BaseThrottle]:
        # Placing orders is limited per customer; reading them is not.
        return [OrderPlacementThrottle()] if self.request.method == "POST" else []

    def get_queryset(self) -> QuerySet[Order]:
        return selectors.orders_visible_to(self.request.user)

    @extend_schema(summary="List your orders, newest first (staff: everyone's)", tags=["orders"])
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Place an order",
        description=(
            "Checks Orders' view of stock levels, records the order as REQUESTED and emits "
            "`OrderRequested` in one transaction, and answers at once: Stock, Payments and Orders "
            "decide the outcome through events. Follow the `Location` header with `?wait=N`, or "
            "send `Prefer: wait=N` to have this request wait for the outcome."
        ),
        tags=["orders"],
        request=PlaceOrderSerializer,
        parameters=[IDEMPOTENCY_KEY, PREFER, LOCATION, REPLAYED, APPLIED],
        responses={
            200: OpenApiResponse(
                OrderSerializer, description="with `Prefer: wait=N`: the order, decided within N s"
            ),
            202: OpenApiResponse(OrderSerializer, description="accepted: the order is REQUESTED"),
            400: OpenApiResponse(description="field errors: unknown sku, bad quantity, bad lines, no token"),
            409: OpenApiResponse(InsufficientStockSerializer, description="too little stock: nothing placed"),
            422: OpenApiResponse(
                OrderErrorSerializer, description="Idempotency-Key reused with a different body"
            ),
            429: OpenApiResponse(
                OrderErrorSerializer,
                description="too many orders (THROTTLE_ORDERS_RATE): retry after `Retry-After` seconds",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        return _place(request)


class _FirstRead:
    """The detail view's first turn at the database, the same in both lanes."""

    _timeout: float
    _answer: dict[str, Any] | None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Authentication reads the token: in a database turn like the order's reads (adrf runs
        # this in the request's thread). The first read of the order follows in the same turn
        # and transaction, one commit: in full when the request will not wait, else only its
        # state. `?wait=` is checked first: a bad one is a 400 before any 404.
        self._timeout = 0.0
        self._answer = None
        with _database_turn(), transaction.atomic():
            super().initial(request, *args, **kwargs)  # type: ignore[misc]  # the view's initial()
            if request.method == "GET":
                self._timeout = _wait_timeout(request)
                # Decided already, or no wait asked: read in full now, answered without a wait.
                if self._timeout <= 0 or _state_is_final(request, kwargs["order_id"]):
                    _, self._answer = _order_state(request, kwargs["order_id"])


class OrderDetailView(_FirstRead, APIView):
    """Sync: what the web process's direct lane runs for a read that does not wait, in the
    request's thread (an async view there would start an event loop in a thread of its own
    per request). A wait reaches it only on a sync server (the test client, runserver), where
    it holds the request's thread; the web process sends every `?wait=` to
    WaitingOrderDetailView (orders/urls_waiting.py)."""

    @extend_schema(
        summary="Show an order, optionally waiting for its outcome",
        tags=["orders"],
        parameters=[WAIT, RETRY_AFTER],
        responses={
            200: OrderSerializer,
            400: OpenApiResponse(description="bad `wait`"),
            404: NOT_FOUND,
            429: OpenApiResponse(
                OrderErrorSerializer,
                description=(
                    "too many waits of yours at once (ORDER_WAITS_PER_CUSTOMER, across the server): "
                    "retry after `Retry-After` seconds, or ask without `wait`"
                ),
            ),
        },
    )
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        if self._answer is not None:  # decided, or no wait asked: read in full by initial()
            return Response(self._answer)
        return Response(async_to_sync(_wait_for_decision)(request, order_id, self._timeout))


class WaitingOrderDetailView(_FirstRead, AsyncAPIView):
    """`GET /api/orders/{id}/?wait=N` in the web's waiting lane: async (adrf), so that a wait is a
    coroutine of the ASGI worker and holds no thread. Documented by OrderDetailView."""

    @classmethod
    def asks_to_wait(cls, scope: Scope) -> bool:
        return scope["method"] == "GET" and query_has(scope, "wait")

    async def get(self, request: Request, order_id: uuid.UUID) -> Response:
        if self._answer is not None:
            return Response(self._answer)
        return Response(await _wait_for_decision(request, order_id, self._timeout))


async def _wait_for_decision(request: Request, order_id: uuid.UUID, timeout: float) -> dict[str, Any]:
    """The order once decided, or as it is after `timeout` seconds; 429 past the customer's cap."""
    # With a pool (the web process) a read may run on any thread: the loop's shared executor
    # keeps the reads of a thousand waits on a few threads, not a thread each. Without one
    # (runserver, tests) it stays on the request's thread, with its connection and transaction.
    thread_sensitive = not _pooled()
    decided = sync_to_async(_decided_order, thread_sensitive=thread_sensitive)
    # The first read (initial()) answered 404 for others' orders before any wait. While
    # waiting, a ring of the doorbell re-reads only the state, and the order in full once
    # it is decided, in one transaction.
    try:
        async with wait_slots.slot(request.user.pk, seconds=timeout):
            data = await bells.wait_until(
                order_id,
                read=lambda: decided(request, order_id),
                done=_is_given,
                timeout=timeout,
                cannot_be_done=_undecided_state,
            )
    except wait_slots.TooManyWaits as refused:
        cap = settings.ORDER_WAITS_PER_CUSTOMER
        detail = f"Too many waits at once: at most {cap} per customer."
        raise Throttled(wait=refused.retry_after, detail=detail) from None
    if data is None:  # still undecided after the wait: as it is now
        _, data = await sync_to_async(_read_order, thread_sensitive=thread_sensitive)(request, order_id)
    return data


class OrderEventsView(APIView):
    @extend_schema(
        summary="The order's story: every event with its correlation id, in order",
        tags=["orders"],
        responses={200: OrderStorySerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _order_or_404(request, order_id)
        story = {
            "order_id": order.id,
            "correlation_id": order.correlation_id,
            "events": selectors.order_story(order),
        }
        return Response(OrderStorySerializer(story).data)


class PlaceOrderAndWaitView(AsyncAPIView):
    """`POST /api/orders/` with `Prefer: wait=N`, in the web's waiting lane (orders/urls_waiting.py):
    places the order, then waits up to N seconds (capped) for its outcome, holding no thread.

    The project's URLconf has the sync view, which documents the header and places without
    waiting: a sync server (the test client, runserver) answers 202 as if no wait were asked.
    """

    def get_throttles(self) -> list[BaseThrottle]:
        return [OrderPlacementThrottle()]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        with _database_turn():
            super().initial(request, *args, **kwargs)

    @classmethod
    def asks_to_wait(cls, scope: Scope) -> bool:
        return scope["method"] == "POST" and bool(prefer.wait_seconds(header(scope, "Prefer")))

    async def post(self, request: Request) -> Response:
        placed = await sync_to_async(_place_in_a_turn)(request)
        seconds = prefer.wait_seconds(request.headers.get("Prefer"))
        if placed.status_code != status.HTTP_202_ACCEPTED or not seconds:
            return placed
        order_id = uuid.UUID(placed.data["id"])
        timeout = min(seconds, settings.ORDER_WAIT_MAX_SECONDS)
        decided = sync_to_async(_decided_order, thread_sensitive=False)
        try:
            async with wait_slots.slot(request.user.pk, seconds=timeout):
                data = await bells.wait_until(
                    order_id,
                    read=lambda: decided(request, order_id),
                    done=_is_given,
                    timeout=timeout,
                    cannot_be_done=_undecided_state,
                )
        except wait_slots.TooManyWaits:
            return placed  # the order is placed: answer as without the preference
        placed[PREFERENCE_APPLIED] = "wait"
        if data is None:
            return placed
        decided = Response(data, status.HTTP_200_OK, headers={"Location": placed["Location"]})
        decided[PREFERENCE_APPLIED] = "wait"
        return decided


def _place(request: Request) -> Response:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= 255:
        raise ValidationError({"Idempotency-Key": ["Must be 1 to 255 characters."]})
    serializer = PlaceOrderSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        placement = services.place_order(
            customer=request.user,
            lines=[services.LineRequest(**line) for line in serializer.validated_data["lines"]],
            payment_token=serializer.validated_data["payment_token"],
            idempotency_key=key,
        )
    except services.UnknownProducts as error:  # the catalog changed since validation
        raise ValidationError({"lines": [str(error)]}) from None
    except services.InsufficientStock as error:
        body = {"detail": str(error), "shortages": [vars(shortage) for shortage in error.shortages]}
        return Response(body, status.HTTP_409_CONFLICT)
    except services.IdempotencyKeyReused as error:
        return Response({"detail": str(error)}, status.HTTP_422_UNPROCESSABLE_ENTITY)
    headers = {"Location": reverse("orders:order-detail", args=[placement.order.id], request=request)}
    if not placement.created:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        order_representation(placement.order, placement.lines), status.HTTP_202_ACCEPTED, headers=headers
    )


def _place_in_a_turn(request: Request) -> Response:
    """Place on the waiting lane's shared thread, whose connection must go back before the wait;
    one transaction, as the sync view's (OrderListCreateView.dispatch)."""
    with _database_turn(), transaction.atomic():
        return _place(request)


# Waits that start or wake together (a thousand customers after a sale) take turns at the
# database: at most half of a worker's pool (DATABASE_POOL_MAX_SIZE) serves waits at once, so
# the rest stays free for other requests; the others wait for their turn in their request's
# thread, holding no connection.
_turns = threading.BoundedSemaphore(max(1, settings.DATABASE_POOL_MAX_SIZE // 2))


@contextmanager
def _database_turn() -> Iterator[None]:
    with _turns:
        try:
            yield
        finally:
            # A waiting request must not hold a pooled connection between its reads (awaits
            # of the event loop come in between). A persistent connection, outside the web
            # process, stays with its thread.
            if _pooled():
                connection.close()


def _pooled() -> bool:
    return bool(connection.settings_dict.get("OPTIONS", {}).get("pool"))


def _read_order(request: Request, order_id: uuid.UUID) -> tuple[bool, dict[str, Any]]:
    """Whether the order is decided, and its representation: one short use of the database."""
    with _database_turn():
        return _order_state(request, order_id)


def _order_state(request: Request, order_id: uuid.UUID) -> tuple[bool, dict[str, Any]]:
    order = _order_or_404(request, order_id)
    return order.is_final, order_representation(order, selectors.lines_of(order.id))


def _wait_timeout(request: Request) -> float:
    """The seconds `?wait=` asks for, capped; a 400 field error for a bad value."""
    # A plain dict: from a QueryDict DRF reads `?wait=` as absent (the default), where the
    # schema says a number; as a dict it is "" and a 400 field error.
    query = WaitQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return float(min(query.validated_data["wait"], settings.ORDER_WAIT_MAX_SECONDS))


def _decided_order(request: Request, order_id: uuid.UUID) -> dict[str, Any] | None:
    """The order in full once it is decided, else None; one short transaction either way."""
    with _database_turn(), transaction.atomic():
        if not _state_is_final(request, order_id):
            return None
        _, data = _order_state(request, order_id)
        return data


def _is_given(data: dict[str, Any] | None) -> bool:
    return data is not None


_UNDECIDED_STATES = frozenset(state.value for state in OrderState if state not in FINAL_STATES)


def _undecided_state(news: str) -> bool:
    """A doorbell's news that the order moved to a state that is not final: no read needed yet
    (an order's wait otherwise re-read it when it became VALIDATED, a read and a commit)."""
    return news in _UNDECIDED_STATES


def _state_is_final(request: Request, order_id: uuid.UUID) -> bool:
    state = selectors.order_state_visible_to(request.user, order_id)
    if state is None:
        raise Http404("No such order.")
    return state in FINAL_STATES


def _order_or_404(request: Request, order_id: uuid.UUID) -> Order:
    order = selectors.order_visible_to(request.user, order_id)
    if order is None:
        raise Http404("No such order.")
    return order

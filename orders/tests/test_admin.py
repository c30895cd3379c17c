"""The orders admin: read-only pages that link an order to its events."""

import pytest

from orders.models import Notification, NotificationKind
from orders.tests.factories import make_user, place, stock_level

pytestmark = pytest.mark.django_db


def test_an_order_page_shows_its_lines_and_links_to_its_events(admin_client) -> None:
    stock_level("KB-1", available=5, name="Keyboard")
    order = place(make_user("carol"), ("KB-1", 2))
    Notification.objects.create(order=order, kind=NotificationKind.CONFIRMATION)

    page = admin_client.get(f"/admin/orders/order/{order.id}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Keyboard" in html
    assert f"/admin/outbox/outboxrecord/?correlation_id={order.correlation_id}" in html
    assert f"/admin/backbone/inboxentry/?correlation_id={order.correlation_id}" in html
    story = f"/admin/story/{order.correlation_id}/?subject={order.id}"
    assert story in html
    assert "OrderRequested" in admin_client.get(story).content.decode()
    assert (
        admin_client.get(f"/admin/outbox/outboxrecord/?correlation_id={order.correlation_id}").status_code
        == 200
    )
    assert (
        admin_client.get(f"/admin/backbone/inboxentry/?correlation_id={order.correlation_id}").status_code
        == 200
    )


def test_orders_cannot_be_changed_or_added_in_the_admin(admin_client) -> None:
    stock_level("KB-1", available=5)
    order = place(make_user("carol"), ("KB-1", 1))

    assert admin_client.get("/admin/orders/order/add/").status_code == 403
    assert admin_client.post(f"/admin/orders/order/{order.id}/delete/").status_code == 403
    assert "Save" not in admin_client.get(f"/admin/orders/order/{order.id}/change/").content.decode()


@pytest.mark.parametrize(
    "path", ["/admin/orders/order/", "/admin/orders/stocklevelview/", "/admin/orders/notification/"]
)
def test_the_changelists_render(admin_client, path) -> None:
    stock_level("KB-1", available=5)
    place(make_user("carol"), ("KB-1", 1))
    assert admin_client.get(path).status_code == 200

"""The story picture in a real browser: headless Chromium (Debian's chromium and chromium-driver)
opens the admin page of a story that the real consumer runner handled, one handler failing.

The screenshot goes to test-artifacts/ (gitignored); the path is printed.
"""

import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from backbone.correlation import correlation_scope
from backbone.models import DeadLetter
from backbone.testing.browser import chromium, log_in, screenshot
from backbone.tests.consumer_probe import (
    ProbeBroken,
    ProbeContextFactory,
    ProbeRecorded,
    ProbeShipped,
    consume_until_caught_up,
)
from outbox.emit import emit
from outbox.tests.test_story import _publish_like_the_relay

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]

PASSWORD = "staff-test-password"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as browser:
        yield browser


def _story_handled_by_two_groups(first: str, second: str) -> str:
    """One origin with a follow-up per group, and one event whose handler fails in both groups."""
    correlation_id = f"picture-{uuid.uuid4().hex[:8]}"
    ProbeBroken.objects.create(probe_key="picture-broken")
    with correlation_scope(correlation_id), transaction.atomic():
        emit(ProbeRecorded(probe_key="picture-1", seq=1, follow_up=True))
        emit(ProbeShipped(probe_key="picture-broken", amount=1))
    _publish_like_the_relay(correlation_id)
    for context in (first, second):
        consume_until_caught_up(context, max_attempts=2)
    _publish_like_the_relay(correlation_id)  # the follow-ups the handlers emitted
    return correlation_id


def test_a_staff_member_sees_the_story_with_its_dead_letters_in_warning_colour(
    make_probe_context: ProbeContextFactory, live_server, browser: WebDriver
) -> None:
    first, second = make_probe_context(), make_probe_context()
    correlation_id = _story_handled_by_two_groups(first, second)
    assert DeadLetter.objects.filter(correlation_id=correlation_id).count() == 2

    get_user_model().objects.create_user("picture-staff", password=PASSWORD, is_staff=True)
    log_in(browser, live_server.url, "picture-staff", PASSWORD, f"/admin/story/{correlation_id}/")
    browser.find_element(By.CSS_SELECTOR, ".story svg")
    screenshot(browser, "story-picture.png")

    lanes = [lane.get_attribute("data-lane") for lane in browser.find_elements(By.CSS_SELECTOR, "g.lane")]
    assert lanes == ["orders", "shipments"]
    boxes = browser.find_elements(By.CSS_SELECTOR, "g.event")
    assert [box.find_element(By.CSS_SELECTOR, ".type").text for box in boxes] == [
        "1. ProbeRecorded",
        "2. ProbeShipped",
        "3. ProbeFollowedUp",
        "4. ProbeFollowedUp",
    ]
    assert [box.get_attribute("data-lane") for box in boxes] == ["orders", "shipments", "orders", "orders"]
    # Where Kafka stored each one, and the time since the step before.
    for box in boxes:
        assert "@" in box.find_element(By.CSS_SELECTOR, ".place").text
    assert boxes[1].find_element(By.CSS_SELECTOR, ".since").text.startswith("+")
    # Each follow-up was caused by the origin, in its own handler's group.
    arrows = browser.find_elements(By.CSS_SELECTOR, "path.arrow")
    assert sorted((a.get_attribute("data-cause"), a.get_attribute("data-effect")) for a in arrows) == [
        ("1", "3"),
        ("1", "4"),
    ]
    # Handled by both groups: the origin's marks are plain; the failed event is in warning colour.
    origin_marks = boxes[0].find_elements(By.CSS_SELECTOR, ".mark")
    assert sorted(mark.text for mark in origin_marks) == sorted([f"✓ {first}", f"✓ {second}"])
    assert "warning" not in boxes[0].get_attribute("class")
    failed = boxes[1]
    assert "warning" in failed.get_attribute("class")
    assert failed.find_element(By.CSS_SELECTOR, "rect").value_of_css_property("stroke") == "rgb(192, 57, 43)"
    dead = failed.find_elements(By.CSS_SELECTOR, ".mark.warning")
    assert sorted(mark.get_attribute("data-state") for mark in dead) == ["dead-lettered", "dead-lettered"]
    assert all("dead letter #" in mark.text and "2 tries" in mark.text for mark in dead)
    assert dead[0].value_of_css_property("fill") == "rgb(192, 57, 43)"

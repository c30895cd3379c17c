"""The story picture page of the admin (staff only): one correlation id, drawn by the server."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .picture import picture


@staff_member_required
def story_picture(request: HttpRequest, correlation_id: str) -> HttpResponse:
    # ?subject=<order id> keeps only that aggregate's events and their effects (see story()).
    subject = request.GET.get("subject") or None
    context = {
        **admin.site.each_context(request),
        "title": f"Story {correlation_id}",
        "picture": picture(correlation_id, subject=subject),
        "subject": subject,
        "is_nav_sidebar_enabled": False,  # the picture needs the width
    }
    return render(request, "outbox/story.html", context)

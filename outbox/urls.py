from django.urls import path

from .views import story_picture

urlpatterns = [
    # path: any correlation id an outbox row may hold reverses, so no admin page links to a 500.
    path("<path:correlation_id>/", story_picture, name="outbox-story"),
]

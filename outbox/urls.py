from django.urls import path

from .views import story_picture

urlpatterns = [
    path("<str:correlation_id>/", story_picture, name="outbox-story"),
]

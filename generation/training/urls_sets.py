"""Pages of instruction sets, under /training/sets/ (namespace "training")."""

from django.urls import path

from . import views_sets

urlpatterns = [
    path("", views_sets.sets, name="sets"),
    path("new/", views_sets.set_new, name="set_new"),
    path("<int:pk>/", views_sets.set_detail, name="set_detail"),
    path("<int:pk>/files/<str:name>", views_sets.set_file, name="set_file"),
]

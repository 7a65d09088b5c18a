from django.urls import path

from . import views

app_name = "assessment"
urlpatterns = [
    path("rate/", views.rate_home, name="rate_home"),
    path("rate/<int:study_id>/", views.rate_study, name="rate_study"),
    path("rate/<int:study_id>/skip/", views.rate_skip, name="rate_skip"),
    path("rate/<int:study_id>/revise/<str:token>/", views.rate_revise, name="rate_revise"),
    path("studies/", views.studies, name="studies"),
    path("studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("studies/<int:pk>/questions.json", views.study_questions_export, name="study_questions_export"),
    path("studies/<int:pk>/results/", views.study_results_page, name="study_results"),
    path("studies/<int:pk>/export/<str:kind>", views.study_export, name="study_export"),
]

from django.apps import AppConfig


class RatingConfig(AppConfig):
    name = "tarifa.rating"
    label = "rating"
    verbose_name = "Rating"

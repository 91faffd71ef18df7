from django.apps import AppConfig


class ChallengesConfig(AppConfig):
    name = "challenges"

    def ready(self):
        # As the README registers them: the source on the model (a post_save handler
        # that runs each saved challenge through it), the mail handler on the groups,
        # and the generators' source of candidates and context.
        from spark import api
        from spark.spark_generators.api import SOURCES

        from . import events

        api.register_model_event_source(
            sender=self.get_model("Challenge"), source=events.events_from_challenge
        )
        api.register_group_handler(group=r"^challenge", handler=events.send_challenge_mail)
        SOURCES["challenges"] = {
            "candidates": events.candidates,
            "context": events.challenge_context,
            "verbose_name": "challenges",
        }

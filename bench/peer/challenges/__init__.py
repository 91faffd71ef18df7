"""The django-spark README's challenges example as a Django app, for the benchmark."""

from django.db import models


class Owner(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)


class Challenge(models.Model):
    # The records' own ids, so that event keys are the Spark side's.
    id = models.BigIntegerField(primary_key=True)
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(Owner, on_delete=models.CASCADE)
    is_active = models.BooleanField(default=True)
    start_date = models.DateField()
    end_date = models.DateField()

    def __str__(self):
        return self.title


class Donation(models.Model):
    # The README's source counts them: `challenge.donations.count()`.
    challenge = models.ForeignKey(
        Challenge, on_delete=models.CASCADE, related_name="donations"
    )

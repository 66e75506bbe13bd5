import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = (
        "Create or update the superuser ADMIN_USERNAME with ADMIN_PASSWORD. "
        "With --generate-password and no ADMIN_PASSWORD, a random password is set and printed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--generate-password",
            action="store_true",
            help="when ADMIN_PASSWORD is unset: set a random password and print it (dev only)",
        )

    @transaction.atomic
    def handle(self, *args, **options):
        username = settings.ADMIN_USERNAME
        password = settings.ADMIN_PASSWORD
        generated = False
        if not password:
            if not options["generate_password"]:
                raise CommandError("Set ADMIN_PASSWORD (or pass --generate-password).")
            password = secrets.token_urlsafe(12)
            generated = True
        user_model = get_user_model()
        try:
            validate_password(password, user=user_model(username=username))
        except ValidationError as exc:
            raise CommandError("ADMIN_PASSWORD is too weak: " + " ".join(exc.messages)) from None
        user, created = user_model.objects.get_or_create(username=username)
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} superuser '{username}'."))
        if generated:
            self.stdout.write(f"Password: {password}")

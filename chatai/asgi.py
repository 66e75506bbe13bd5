import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatai.settings.production")

application = get_asgi_application()

# The embedded default's periodic jobs, in a server process without a broker (see the module).
from core import scheduler  # noqa: E402

scheduler.start_if_server()

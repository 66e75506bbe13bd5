import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatai.settings.production")

application = get_wsgi_application()

# The embedded default's periodic jobs, in a server process without a broker (see the module).
from core import scheduler  # noqa: E402

scheduler.start_if_server()

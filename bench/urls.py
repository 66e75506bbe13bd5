"""The production URLs plus `POST /bench/baseline`: read the form, insert one row, answer."""

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from chatai.urls import urlpatterns as production_urlpatterns

TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS bench_baseline "
    "(id bigserial PRIMARY KEY, sid varchar(64) NOT NULL, created_at timestamptz DEFAULT now())"
)


@csrf_exempt
def baseline(request: HttpRequest) -> HttpResponse:
    """The least a webhook can do: parse the form and insert one row (autocommit)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_baseline (sid) VALUES (%s)", [request.POST.get("MessageSid", "")]
        )
    return HttpResponse(
        '<?xml version="1.0" encoding="UTF-8"?><Response/>', content_type="text/xml"
    )


urlpatterns = [path("bench/baseline", baseline), *production_urlpatterns]

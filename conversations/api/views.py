from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import selectors
from conversations.api.filters import ContactFilter, MessageFilter, ThreadFilter
from conversations.api.serializers import (
    AgentMessageSerializer,
    ContactSerializer,
    ErasureReportSerializer,
    ErasureSerializer,
    MessageSerializer,
    StatsQuerySerializer,
    StatsSerializer,
    ThreadSerializer,
    ThreadUpdateSerializer,
)
from conversations.models import ChatThread, Contact, Message
from conversations.services.outbound import (
    ContactErasedError,
    OutsideWindowError,
    message_send_agent,
)
from conversations.services.privacy import ContactBusyError, contact_erase, contact_export
from conversations.services.stats import tenant_stats
from conversations.services.templates import (
    OptedOutError,
    TemplatesUnavailableError,
    message_send_template,
    template_refs,
)
from conversations.services.threads import thread_update
from core.api import Conflict
from core.api_base import UUID_PATTERN, error_response
from core.pagination import StrictCursorPagination
from core.query import single_query_params
from tenants.access import Action
from tenants.api_base import TenantScopedMixin, request_user


@extend_schema_view(
    list=extend_schema(summary="List contacts"),
    retrieve=extend_schema(summary="A contact"),
)
class ContactViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ContactSerializer
    queryset = Contact.objects.order_by("-created_at", "-id")
    filterset_class = ContactFilter
    lookup_url_kwarg = "contact"
    lookup_value_regex = UUID_PATTERN
    action_permissions = {"export": Action.EXPORT, "erase": Action.ERASE}

    @extend_schema(
        summary="Everything held about the contact, decrypted",
        responses={200: {"type": "object", "additionalProperties": True}},
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def export(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(contact_export(contact=self.get_object()))

    @extend_schema(
        summary="Erase the contact's personal data (keeps a tombstone; idempotent)",
        request=ErasureSerializer,
        responses={
            200: ErasureReportSerializer,
            **error_response(
                "409",
                "`contact_busy`: replies to the contact are being sent right now, for longer "
                "than an erasure waits (20 s); nothing was erased. Try again in a minute.",
            ),
        },
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def erase(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        contact = self.get_object()
        serializer = ErasureSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            report = contact_erase(contact=contact, dry_run=serializer.validated_data["dry_run"])
        except ContactBusyError as exc:
            raise Conflict(str(exc), code="contact_busy") from exc
        return Response(report.as_dict())


@extend_schema_view(
    list=extend_schema(summary="List threads, most recent activity first"),
    retrieve=extend_schema(summary="A thread"),
    partial_update=extend_schema(
        summary="Change status or needs_human (false resumes automation)",
        request=ThreadUpdateSerializer,
        responses={200: ThreadSerializer},
    ),
)
class ThreadViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ThreadSerializer
    queryset = ChatThread.objects.select_related("contact")
    filterset_class = ThreadFilter
    lookup_url_kwarg = "thread"
    lookup_value_regex = UUID_PATTERN
    http_method_names = ["get", "patch", "head", "options"]
    write_action = Action.REPLY

    def base_queryset(self) -> QuerySet:
        return selectors.thread_list(tenant=self.tenant)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        thread = self.get_object()
        serializer = ThreadUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        thread = thread_update(thread=thread, **serializer.validated_data)
        return Response(ThreadSerializer(thread).data)


class MessageCursorPagination(StrictCursorPagination):
    """Newest first; `?page_size=` from 1 to 200."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_schema_view(
    get=extend_schema(summary="The thread's messages, newest first (cursor-paginated)"),
    post=extend_schema(
        summary="Send a message as an agent",
        request=AgentMessageSerializer,
        responses={
            201: MessageSerializer,
            **error_response(
                "409",
                "`outside_window`: more than 24 hours since the contact last wrote; "
                "WhatsApp only allows approved templates then (`error.templates` lists the "
                "channel's: send one with `template`); `contact_erased`; for a template, "
                "`opted_out` (the contact opted out) or `templates_unavailable` (the channel "
                "may not send templates, e.g. Twilio on the platform's credentials).",
            ),
        },
    ),
)
class ThreadMessagesView(TenantScopedMixin, generics.ListCreateAPIView):
    """`/threads/{thread}/messages/`: the conversation, and agent replies."""

    serializer_class = MessageSerializer
    filterset_class = MessageFilter
    pagination_class = MessageCursorPagination
    write_action = Action.REPLY

    queryset = Message.objects.all()

    def get_thread(self) -> ChatThread:
        return self.tenant_parent(ChatThread.objects.select_related("contact"), "thread")

    def base_queryset(self) -> QuerySet:
        return selectors.message_list(thread=self.get_thread())

    def get_serializer_class(self) -> type:
        return AgentMessageSerializer if self.request.method == "POST" else MessageSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        thread = self.get_thread()
        serializer = AgentMessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            if "template" in data:
                message = message_send_template(
                    thread=thread, spec=data["template"], user=request_user(request)
                )
            else:
                message = message_send_agent(
                    thread=thread, text=data["text"], user=request_user(request)
                )
        except ContactErasedError:
            raise Conflict(
                "The contact's data was erased, so no message can be sent to them.",
                code="contact_erased",
            ) from None
        except OptedOutError as exc:
            raise Conflict(str(exc), code="opted_out") from None
        except TemplatesUnavailableError as exc:
            raise Conflict(str(exc), code="templates_unavailable") from None
        except OutsideWindowError:
            conflict = Conflict(
                "The 24-hour customer service window is closed: the contact has not written "
                "in the last 24 hours, so WhatsApp only accepts approved templates "
                "(`templates` lists this channel's; send one with `template`).",
                code="outside_window",
            )
            conflict.extra = {"templates": template_refs(thread=thread)}
            raise conflict from None
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class StatsView(TenantScopedMixin, APIView):
    """`/stats/?days=N`: the dashboard's numbers (see `conversations.services.stats`)."""

    query_serializer_class = StatsQuerySerializer

    @extend_schema(
        summary="Activity over the last N days (default 30, 1..365)",
        parameters=[StatsQuerySerializer],
        responses={200: StatsSerializer},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = StatsQuerySerializer(data=single_query_params(request, ["days"]))
        query.is_valid(raise_exception=True)
        stats = tenant_stats(tenant=self.tenant, days=query.validated_data["days"])
        return Response(StatsSerializer(stats).data)

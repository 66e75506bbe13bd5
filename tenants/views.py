"""The page where an invitation is accepted: `/accounts/invite/<token>/`.

Whoever holds the link accepts with their own account: the one they are logged in with, one
they log in to here, or one they create here (a username and password of their choice). See
`tenants.members` for why an invitation never touches an account by its email.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import login
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from tenants.members import InvitationUnusable, invitation_accept, invitation_find
from tenants.models import TenantInvitation

_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class AccountCreationForm(UserCreationForm):
    """A new account for the invited person: the username and password they choose."""

    class Meta(UserCreationForm.Meta):
        fields = ("username", "first_name", "last_name")


def _accepted(request: HttpRequest, invitation: TenantInvitation, user: Any) -> HttpResponse:
    try:
        membership = invitation_accept(invitation=invitation, user=user)
    except InvitationUnusable:
        return _unusable(request)
    messages.success(
        request,
        f"You are now a member of {invitation.tenant.name} "
        f"({membership.get_role_display().lower()}).",
    )
    return HttpResponseRedirect(reverse("admin:index"))


def _page(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """The page in the admin's frame (its header, styles and user tools)."""
    return TemplateResponse(
        request,
        "tenants/invitation.html",
        {**admin.site.each_context(request), **context},
        status=status,
    )


def _unusable(request: HttpRequest) -> HttpResponse:
    return _page(request, {"title": "Invitation not valid", "invitation": None}, status=404)


@never_cache
@sensitive_post_parameters("password", "password1", "password2")
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_find(raw_token=token)
    if invitation is None:
        return _unusable(request)
    user = request.user if request.user.is_authenticated else None
    login_form = AuthenticationForm(request)
    signup_form = AccountCreationForm(initial={"username": invitation.email[:150].lower()})
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "accept" and user is not None:
            return _accepted(request, invitation, user)
        if action == "login" and user is None:
            login_form = AuthenticationForm(request, data=request.POST)
            if login_form.is_valid():
                login(request, login_form.get_user())
                return _accepted(request, invitation, request.user)
        if action == "signup" and user is None:
            signup_form = AccountCreationForm(request.POST)
            if signup_form.is_valid():
                with transaction.atomic():
                    new_user = signup_form.save(commit=False)
                    new_user.email = invitation.email
                    new_user.save()
                    response = _accepted(request, invitation, new_user)
                    if response.status_code != 302:
                        transaction.set_rollback(True)  # used up meanwhile: no stray account
                        return response
                login(request, new_user, backend=_MODEL_BACKEND)
                return response
    context = {
        "title": f"Join {invitation.tenant.name}",
        "invitation": invitation,
        "current_user": user,
        "login_form": login_form,
        "signup_form": signup_form,
    }
    return _page(request, context)

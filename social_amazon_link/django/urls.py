"""The URLs: ``path("", include("social_amazon_link.django.urls"))``, in place of social_django's.

Ours first (sign-in start, callback and unlink with this library's rules, the
prompt pages, ``/api/amazon/``), then social_django's own under its ``social``
namespace (its other views, and the names its code reverses): an app that
included ``social_django.urls`` includes this module instead.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import include, path, re_path
from social_core.utils import setting_name

from ..flow import api as flow_api
from . import api, views

_slash = "/" if getattr(settings, setting_name("TRAILING_SLASH"), True) else ""

urlpatterns = [
    path(f"login/<str:backend>{_slash}", views.begin, name="amazon_link_begin"),
    path(f"complete/<str:backend>{_slash}", views.complete, name="amazon_link_complete"),
    path(f"disconnect/<str:backend>{_slash}", views.disconnect, name="amazon_link_disconnect"),
    path(
        f"disconnect/<str:backend>/<str:association_id>{_slash}",
        views.disconnect,
        name="amazon_link_disconnect_individual",
    ),
    path("link/amazon/password", views.password_prompt, name="amazon_link_password"),
    path("link/amazon/register", views.register_prompt, name="amazon_link_register"),
    path("api/amazon/token", api.endpoint(flow_api.token), name="amazon_link_api_token"),
    path("api/amazon/continue", api.endpoint(flow_api.resume), name="amazon_link_api_continue"),
    path(
        "api/amazon/code/challenge",
        api.endpoint(flow_api.code_challenge),
        name="amazon_link_api_code_challenge",
    ),
    path("api/amazon/code", api.endpoint(flow_api.code), name="amazon_link_api_code"),
    re_path(r"^api/amazon/(?P<rest>.*)$", api.not_found),
    path("", include("social_django.urls", namespace="social")),
]

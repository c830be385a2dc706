"""The Django integration: add ``social_amazon_link.django`` to ``INSTALLED_APPS``.

Beside ``social_django``: its models hold the links, nonces, codes and pauses;
this app adds the library's own tables (wrong-password counts, link events)
with their migrations, and the storage (:mod:`.storage`) that serves the
storage contract on both. Importing this package loads no model: Django
imports :mod:`.models` when its app registry is ready.
"""

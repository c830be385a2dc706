"""The demo as a small Django project: ``python -m demo --framework django``.

The same Acme Books as the Flask demo (:mod:`demo`): the same pages and form
fields, rendered from the same Jinja templates (:mod:`.pages`); the same seed
(:func:`demo.seed.seed_into`); the same emulator, ports and JSON API. Login
with Amazon comes from ``social_django`` and ``social_amazon_link.django``,
added through ``settings.py`` and ``urls.py`` the way any Django app adds them
(docs/django.md).
"""

"""The Django test app: an app's own accounts (``users``, as tests/accounts.py's columns).

The HTTP-level suites read and write that table with the same SQL on Flask and
on Django. Its views and urls (the sample app the suites serve) live here too.
"""

"""``python -m bench``: what a Login with Amazon sign-in costs, against stock social-core.

The LWA emulator stands in for Amazon over HTTPS (a throwaway CA) behind a TCP
delay proxy, so handshakes and round trips cost what they cost against
``api.amazon.com``. The same scenarios run on this library, on social-core 7's
own ``AmazonOAuth2`` with ``DEFAULT_AUTH_PIPELINE`` (same storage), and on a
bare HTTP client doing only the unavoidable calls (the floor). See
``bench/__main__.py`` for the command line.
"""

"""WSGI entry point for running under any server: ``gunicorn server.wsgi:app``."""

from layers import store
from server.app import create_app

app = create_app(store.ensure_build())

"""WSGI entry point for running under any server: ``gunicorn server.wsgi:app``.

Put a buffering reverse proxy (nginx, as ``ttp-atlas serve`` does) in front of any threaded WSGI
server: a gthread worker gives each open connection a thread, so slow clients could take them all.
"""

from layers import store
from server.app import create_app
from server.serving import share_with_workers

app = create_app(store.ensure_build())
share_with_workers()  # with gunicorn --preload the workers then share the loaded build

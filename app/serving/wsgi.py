"""WSGI entry point for gunicorn: ``gunicorn app.serving.wsgi:application`` (no ``--preload``)."""

from app.factory import create_app

application = create_app()

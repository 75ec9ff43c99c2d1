"""The webhook server: Flask app, gunicorn worker and settings, TLS, connection spreading, metrics."""

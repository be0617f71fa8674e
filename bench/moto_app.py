"""moto's S3 backend as a WSGI app, for bench/moto_server.py to serve."""

from moto.moto_server.werkzeug_app import create_backend_app

app = create_backend_app("s3")

"""CI only: serve pim_portal.wsgi.application (whitenoise included) on 127.0.0.1 with the
standard library's WSGI server, to smoke-test an install from the runtime lock alone.

Prints the port it listens on (chosen by the system), then serves until it is terminated.
Not a production server: production runs the same WSGI application under a server of its
own choice (README, "Production").
"""

import sys
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main() -> None:
    from pim_portal.wsgi import application

    server = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

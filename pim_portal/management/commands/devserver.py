"""Django's development server (staticfiles' runserver), and once it listens, the banner of
`make run`: the URL, the demo sign-ins and how to stop. The Procfile's "web" entry runs it."""

from pathlib import Path

from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand


def banner(url: str, show: Path | None) -> str:
    lines = ["", "=" * 72, f"PIM Portal is running at {url}", ""]
    if show and show.is_file():
        lines += [show.read_text().rstrip(), ""]
    lines += [
        "Current TOTP codes of the demo users: make codes",
        "Press Ctrl-C to stop the portal, the worker and the scheduler.",
        "=" * 72,
        "",
    ]
    return "\n".join(lines)


class Command(RunserverCommand):
    help = "Django's development server, printing the portal's URL and the demo sign-ins once it listens."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--show", type=Path, help="a file to print with the URL (the demo sign-ins)")

    def execute(self, *args, **options):
        self._show = options.get("show")
        return super().execute(*args, **options)

    def on_bind(self, server_port):
        super().on_bind(server_port)
        host = f"[{self.addr}]" if self._raw_ipv6 else ("0.0.0.0" if self.addr == "0" else self.addr)  # noqa: S104
        self.stdout.write(banner(f"{self.protocol}://{host}:{server_port}/", self._show))
        self.stdout.flush()

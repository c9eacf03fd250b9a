"""The commands of `stiwatch`, one module per area, gathered in the order help shows them."""

from .setup import config_command, init_command, schema_command
from .backup import backup_command
from .export import export_command
from .search import search_command
from .serve import serve_command
from .sources import sources_group
from .status import status_command

COMMANDS = [
    init_command,
    config_command,
    sources_group,
    schema_command,
    search_command,
    export_command,
    serve_command,
    status_command,
    backup_command,
]

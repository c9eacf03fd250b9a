"""The commands of `stiwatch`, one module per area, gathered in the order help shows them."""

from .setup import config_command, init_command, schema_command
from .sources import sources_group

COMMANDS = [
    init_command,
    config_command,
    sources_group,
    schema_command,
]

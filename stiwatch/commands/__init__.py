"""The commands of `stiwatch`, one module per area, gathered in the order help shows them."""

from .setup import config_command, init_command, schema_command
from .backup import backup_command
from .classify import classify_command, evaluate_command, tag_command, train_command
from .crawl import crawl_command
from .demo import demo_command
from .digest import digest_group
from .export import export_command
from .run import run_command
from .search import search_command
from .serve import serve_command
from .sources import sources_group
from .status import status_command
from .subscribers import subscribers_group
from .trends import trends_command

COMMANDS = [
    demo_command,
    init_command,
    config_command,
    sources_group,
    crawl_command,
    classify_command,
    train_command,
    evaluate_command,
    tag_command,
    run_command,
    schema_command,
    search_command,
    trends_command,
    subscribers_group,
    digest_group,
    export_command,
    serve_command,
    status_command,
    backup_command,
]

"""One module per ``birefvid`` sub-command; each has HELP, register(parser) and sets ``run``."""

from . import eval as eval_cmd  # "eval_cmd": the module must not shadow the built-in in this namespace
from . import batch, bench, export, image, live, models, process, serve, train

COMMANDS = {"process": process, "batch": batch, "live": live, "image": image, "eval": eval_cmd, "bench": bench, "export": export, "train": train, "models": models, "serve": serve}

"""One module per ``birefvid`` sub-command; each has HELP, register(parser) and sets ``run``."""

from . import image, live, models, process, train

COMMANDS = {"process": process, "live": live, "image": image, "train": train, "models": models}

"""One module per ``birefvid`` sub-command; each has HELP, register(parser) and sets ``run``."""

from . import image, models, process

COMMANDS = {"process": process, "image": image, "models": models}

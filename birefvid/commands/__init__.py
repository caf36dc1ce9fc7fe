"""One module per ``birefvid`` sub-command; each has HELP, register(parser) and sets ``run``."""

from . import image, models

COMMANDS = {"image": image, "models": models}

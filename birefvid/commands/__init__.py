"""One module per ``birefvid`` sub-command; each has HELP, register(parser) and sets ``run``."""

from . import image, models, process, train

COMMANDS = {"process": process, "image": image, "train": train, "models": models}

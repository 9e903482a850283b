"""The app as a project gets it: the wheel installed, its optional extras, the system checks of its
settings, deprecated import paths."""

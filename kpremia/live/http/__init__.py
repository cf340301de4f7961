"""The control API, its guard, the status page and the serve command."""

"""Shared vocabulary: errors, files, typed config parts, bar sizes, the plug-in registry, console."""

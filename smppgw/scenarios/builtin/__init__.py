"""The built-in handlers, named in scenario files by ``handler:`` (see ``registry.BUILTIN``)."""
